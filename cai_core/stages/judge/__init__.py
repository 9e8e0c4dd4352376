"""Stage: A/B verdicts from an AI judge. :mod:`.verdicts` renders the plain question and builds
Verdict records; :mod:`.modes` holds what the other judge modes add; :mod:`.stage` runs a
chunk through a backend; :mod:`.cot_parse` reads chain-of-thought verdicts and defangs
untrusted text."""
from .cot_parse import Letter, defang, parse_cot_verdict
from .modes import *  # noqa: F403
from .modes import __all__ as _modes_all
from .stage import draw_principles, judge
from .verdicts import *  # noqa: F403
from .verdicts import __all__ as _verdicts_all

__all__ = sorted({"Letter", "defang", "parse_cot_verdict", "judge", "draw_principles", *_verdicts_all, *_modes_all})
