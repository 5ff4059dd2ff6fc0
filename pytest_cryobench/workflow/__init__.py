"""The whole-workflow chain (group ``workflow``): each step reads the files the step before it
wrote, as CryoSPARC's jobs do. :mod:`.preprocess` holds motion, CTF, picking and extraction;
:mod:`.reconstruct` 2D classification, ab-initio and refinement; :mod:`.checks` the known answers."""
