package secrets

import (
	"fmt"
	"syscall"
)

// tmpfsMagic is the f_type statfs reports for tmpfs (linux/magic.h TMPFS_MAGIC).
const tmpfsMagic = 0x01021994

// IsTmpfs reports whether path is on a tmpfs: memory-backed, never written to a disk (swap aside;
// nodes that hold secrets should run without swap or with encrypted swap).
func IsTmpfs(path string) (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint64(st.Type) == tmpfsMagic, nil
}
