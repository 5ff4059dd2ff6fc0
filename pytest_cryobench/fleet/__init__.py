"""Fleet runs: one benchmark job per node of a SLURM cluster, gathered and compared node with node
(see ``docs/design.md``)."""
