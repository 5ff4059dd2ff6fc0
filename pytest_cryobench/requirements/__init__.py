"""Hardware requirements of a CryoSPARC worker and of CryoSPARC Live: tiers, probes, Live readiness."""
