"""SLURM job scripts from templates and their submission (a pure stage: the workflows compose it)."""
