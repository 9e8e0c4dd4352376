"""Constitution Lab: Constitutional AI end to end, with every AI judgement auditable."""
__version__ = "0.1.0"
