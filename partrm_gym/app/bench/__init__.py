"""`partrm-gym bench ...`: measurements on this machine, printed as Markdown tables."""
