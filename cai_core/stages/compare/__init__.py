"""Stage: before/after evaluation, the pure part. :mod:`.report` holds win rates, response
rates and the report; :mod:`.response_class` the comply / objection / evasive heuristic."""
from .report import *  # noqa: F403
from .report import __all__ as __all__  # noqa: PLC0414
