"""Gold sets: labelled comparisons (files people have, the shipped set, people's audits) that a
judge configuration is validated against before its labels are trusted."""
