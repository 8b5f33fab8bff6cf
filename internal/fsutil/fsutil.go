// Package fsutil has the small file-system steps that durable writes share.
package fsutil

import "os"

// SyncDir fsyncs a directory, so that a rename or create inside it
// survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
