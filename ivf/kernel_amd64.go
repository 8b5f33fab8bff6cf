package ivf

// Placeholder until the assembly kernels land: generic only.
func detectArch()          {}
func setArchLevel(l Level) {}
