package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// serviceUser returns the credential to run a server that refuses root
// (Postgres) as the named user: nil when not root, else that user's ids,
// creating the user if it is missing.
func serviceUser(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		out, addErr := exec.Command("useradd", "--system", "--no-create-home",
			"--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if addErr != nil {
			return nil, fmt.Errorf("user %s is missing and useradd failed: %w: %s", name, addErr, bytes.TrimSpace(out))
		}
		if u, err = user.Lookup(name); err != nil {
			return nil, fmt.Errorf("look up user %s: %w", name, err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// lookBin finds name in PATH, then in the newest directory of dirGlob.
func lookBin(name, dirGlob string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob(dirGlob)
	slices.SortFunc(dirs, compareVersionPaths)
	for _, d := range slices.Backward(dirs) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", name, dirGlob)
}

// compareVersionPaths orders paths such as /usr/lib/postgresql/9.6/bin and
// /usr/lib/postgresql/15/bin by their numeric parts.
func compareVersionPaths(a, b string) int {
	na, nb := numbers(a), numbers(b)
	if c := slices.Compare(na, nb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func numbers(s string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}
