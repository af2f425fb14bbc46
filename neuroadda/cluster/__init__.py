"""Lab-scale runs: the experiment grid (local or as SLURM job arrays) and its aggregation."""
