//go:build !amd64

package ivf

func detectArch()          {}
func setArchLevel(l Level) {}
