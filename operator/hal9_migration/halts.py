"""Why a migration stopped until a person acts (``status.halt.reason``), in one place (pure).

A halt ends with a ``retry`` annotation or a new spec; for an automatic rollback, only a spec with
another hash (see ``autorollback``).
"""

ABORTED = "Aborted"
STATE_FAILED = "StateMigrationFailed"
AUTO_ROLLED_BACK = "RolledBack"  # after an automatic rollback (Stalled and Degraded say so)
DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
