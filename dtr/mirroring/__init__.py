"""Push and poll mirroring (DTR's pushMirroringPolicies and pollMirroringPolicies): docs/mirroring.md."""
