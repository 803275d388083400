"""Where traffic goes: the two systems, the route object whose weights the operator sets, and the
feature-flag targeting rules that send matching requests to one system whatever the weights."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from .common import DNS1035Label, DNS1123Subdomain, Model, cel, k8s, require_unique


class WorkloadRef(Model):
    """One side of the migration: the Service that receives traffic and the Deployment behind it."""

    service: DNS1035Label = Field(
        description="Name of the Service in the migration's namespace that carries this system's traffic: "
        "the route object's backend the operator weights."
    )
    deployment: DNS1123Subdomain = Field(
        description="Name of the Deployment behind that Service, in the same namespace: the analysis "
        "measures its pods' CPU and memory."
    )


class StringMatch(Model):
    """How a header value matches: exactly one of exact, prefix, regex."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1",
                "set exactly one of exact, prefix or regex",
            )
        )
    )

    exact: str | None = Field(None, max_length=256, description="The header value must equal this exactly.")
    prefix: str | None = Field(None, max_length=256, description="The header value must start with this.")
    regex: str | None = Field(
        None,
        max_length=256,
        description="An RE2 regular expression (the syntax Envoy and Istio use) for the header value.",
        json_schema_extra=k8s(
            # CEL's matches() is RE2 (Go's regexp) and compiles a non-constant pattern when the rule runs:
            # an invalid one makes both sides an error, and an error || an error is an error, which the
            # API server reports with the compiler's words, then this message. A valid pattern makes
            # exactly one side true.
            cel(
                "''.matches(self) || !''.matches(self)",
                "regex must be a valid RE2 regular expression (the syntax Envoy and Istio use)",
            )
        ),
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> StringMatch:
        if [self.exact, self.prefix, self.regex].count(None) != 2:
            raise ValueError("set exactly one of exact, prefix or regex")
        return self

    @model_validator(mode="after")
    def _regex_is_re2(self) -> StringMatch:
        # google-re2 is the C++ RE2 that Envoy compiles route regexes with, so what passes here is what
        # the mesh accepts (Python's re accepts lookarounds and backreferences that RE2 refuses).
        import re2

        if self.regex is not None:
            options = re2.Options()
            options.log_errors = False  # the error is raised below; RE2 must not also print it
            try:
                re2.compile(self.regex, options)
            except re2.error as error:
                reason = error.args[0].decode(errors="replace") if error.args else "invalid pattern"
                raise ValueError(
                    f"regex must be a valid RE2 regular expression (the syntax Envoy and Istio use): {reason}"
                ) from None
        return self


_HEADER_NAME = r"^[a-z0-9][a-z0-9._-]*$"


class TargetingMatch(Model):
    """What a request must carry for a targeting rule to apply."""

    headers: dict[str, StringMatch] = Field(
        min_length=1,
        max_length=16,
        description="Request headers (lowercase names) that must all match.",
        json_schema_extra=k8s(
            cel(
                f"self.all(name, size(name) <= 256 && name.matches('{_HEADER_NAME}'))",
                "header names must be lowercase HTTP header names, e.g. x-hal9-user-group",
            )
        ),
    )

    @model_validator(mode="after")
    def _lowercase_header_names(self) -> TargetingMatch:
        bad = [name for name in self.headers if not re.fullmatch(_HEADER_NAME, name) or len(name) > 256]
        if bad:
            raise ValueError(
                f"header names must be lowercase HTTP header names, e.g. x-hal9-user-group: {bad}"
            )
        return self


class Route(StrEnum):
    """Where a targeting rule sends the requests it matches."""

    HIERARCHICAL = "Hierarchical"
    FLAT = "Flat"


class TargetingRule(Model):
    """A feature-flag rule: requests that match go to one system regardless of the weights."""

    name: DNS1123Subdomain = Field(
        description="The rule's name, unique in the list; the route object's match route is named after it."
    )
    match: TargetingMatch = Field(description="What a request must carry for this rule to apply.")
    route: Route = Field(
        description="Hierarchical or Flat: the system every matching request goes to, whatever the "
        "weights (e.g. internal users to hierarchical early)."
    )


class IstioRouter(Model):
    """An Istio VirtualService whose HTTP routes send traffic to flat and hierarchical."""

    virtual_service: DNS1123Subdomain = Field(description="VirtualService in the migration's namespace.")
    routes: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=16,
        description="Named HTTP routes to manage; empty means every route.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _unique_routes(self) -> IstioRouter:
        require_unique(self.routes, "istio.routes")
        return self


class GatewayAPIRouter(Model):
    """A Gateway API HTTPRoute whose rules have backendRefs to flat's and hierarchical's Services."""

    http_route: DNS1123Subdomain = Field(
        alias="httpRoute", description="HTTPRoute in the migration's namespace."
    )
    rules: list[DNS1123Subdomain] = Field(
        default_factory=list,
        max_length=16,
        description="Named rules to manage; empty means every rule with a backendRef to either Service.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _unique_rules(self) -> GatewayAPIRouter:
        require_unique(self.rules, "gatewayAPI.rules")
        return self


class SMIRouter(Model):
    """An SMI TrafficSplit with backends flat's and hierarchical's Services."""

    traffic_split: DNS1123Subdomain = Field(description="TrafficSplit in the migration's namespace.")


class TrafficRouter(Model):
    """The mesh object whose weights the operator sets: exactly one."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "[has(self.istio), has(self.gatewayAPI), has(self.smi)].filter(x, x).size() == 1",
                "set exactly one traffic router: istio, gatewayAPI or smi",
            )
        )
    )

    istio: IstioRouter | None = Field(
        None, description="Set to weight the routes of an Istio VirtualService (networking.istio.io)."
    )
    gateway_api: GatewayAPIRouter | None = Field(
        None,
        alias="gatewayAPI",
        description="Set to weight the rules of a Gateway API HTTPRoute (gateway.networking.k8s.io).",
    )
    smi: SMIRouter | None = Field(
        None, description="Set to weight the backends of an SMI TrafficSplit (split.smi-spec.io)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TrafficRouter:
        if [self.istio, self.gateway_api, self.smi].count(None) != 2:
            raise ValueError("set exactly one traffic router: istio, gatewayAPI or smi")
        return self
