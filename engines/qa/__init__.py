"""Questions about a study: which finding a yes/no question asks about (the rule-derived training pairs
are made in the lab, lab.data.qa)."""
