"""Phase 3's settings: copying the neuron states between two databases as an Indexed Job."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StrictInt, model_validator

from .common import Duration, Model, SecretKeyRef, cel, k8s


class DatabaseRef(Model):
    """A database, by a Secret key holding its URL (URLs carry passwords, so never inline)."""

    url_secret_ref: SecretKeyRef = Field(
        description="The Secret key holding the database URL: sqlite:///path or postgresql://user:password@host/db."
    )


_DISTINCT_DATABASES = "source and target must be different databases (they name the same Secret key)"


# A Kubernetes resource quantity, in the API server's own grammar: 500m, 1.5, 256Mi, 1e3.
_QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"  # a number
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"  # a suffix
)
Quantity = Annotated[str, Field(min_length=1, max_length=32, pattern=_QUANTITY)]


class WorkerRequests(Model):
    """What the scheduler reserves for each worker container."""

    cpu: Quantity | None = Field(
        "250m", description="CPU requested, a Kubernetes quantity (250m = a quarter of a core)."
    )
    memory: Quantity | None = Field("256Mi", description="Memory requested, a Kubernetes quantity (256Mi).")


class WorkerLimits(Model):
    """The most each worker container may use."""

    cpu: Quantity | None = Field(
        None, description="CPU limit, a Kubernetes quantity; none if unset, so workers may use idle CPU."
    )
    memory: Quantity | None = Field(
        "1Gi", description="Memory limit, a Kubernetes quantity; a worker above it is killed and retried."
    )


class WorkerResources(Model):
    """A worker container's resources. The defaults suit one worker process (about 100 MiB at its
    peak); each whole CPU of the limit (else the request) beyond one adds a converter process of
    about 80 MiB (statejob.converters)."""

    requests: WorkerRequests = Field(
        default_factory=WorkerRequests,
        description="What the scheduler reserves for each worker container.",
        json_schema_extra={"default": {}},
    )
    limits: WorkerLimits = Field(
        default_factory=WorkerLimits,
        description="The most each worker container may use.",
        json_schema_extra={"default": {}},
    )


class StateMigration(Model):
    """Phase 3: copying the neuron states from flat's database to hierarchical's, as an Indexed Job."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "self.source.urlSecretRef.name != self.target.urlSecretRef.name "
                "|| self.source.urlSecretRef.key != self.target.urlSecretRef.key",
                _DISTINCT_DATABASES,
            )
        )
    )

    image: str = Field(min_length=1, max_length=1024, description="Image that runs the migration worker.")
    source: DatabaseRef = Field(description="Flat's database, read and never written.")
    target: DatabaseRef = Field(
        description="Hierarchical's database: converted rows and the migration's checkpoints go here."
    )
    batch_size: StrictInt = Field(
        1000,
        ge=1,
        le=100_000,
        description="Rows per transaction, each committed with its checkpoint. Larger is faster; smaller "
        "redoes less after a worker is killed.",
    )
    workers: StrictInt = Field(
        4,
        ge=1,
        le=64,
        description="Worker pods (indexes of the Indexed Job), each migrating one shard of the neuron ids "
        "in parallel.",
    )
    max_failed_rows: StrictInt = Field(
        0,
        ge=0,
        description="Rows that may fail validation (and stay behind, listed in migration_failures) "
        "before the phase fails instead of passing.",
    )
    backoff_limit_per_index: StrictInt = Field(
        2,
        ge=0,
        le=20,
        description="Retries of one shard's pod before the Job fails (a retry resumes from its checkpoint).",
    )
    active_deadline: Duration | None = Field(
        None,
        description="Longest the Job may run (a duration; its activeDeadlineSeconds); no limit if unset.",
    )
    resources: WorkerResources = Field(
        default_factory=WorkerResources,
        description="Each worker pod's container resources. Its whole CPUs (the limit, else the "
        "request; at least 1) are the processes converting that worker's shard, about 80 MiB each.",
        json_schema_extra={"default": {}},
    )

    @model_validator(mode="after")
    def _distinct_databases(self) -> StateMigration:
        if self.source.url_secret_ref == self.target.url_secret_ref:
            raise ValueError(_DISTINCT_DATABASES)
        return self
