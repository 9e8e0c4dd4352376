"""Stage: A/B verdicts from an AI judge. :mod:`.verdicts` renders requests and builds Verdict
records; :mod:`.cot_parse` reads chain-of-thought verdicts and defangs untrusted text."""
from .cot_parse import Letter, defang, parse_cot_verdict
from .verdicts import *  # noqa: F403
from .verdicts import __all__ as _verdicts_all

__all__ = sorted({"Letter", "defang", "parse_cot_verdict", *_verdicts_all})
