//go:build !unix

package pseudonym

import "io/fs"

// checkPrivate has no portable meaning outside Unix: file modes there do
// not describe access. Protect the file with the platform's ACLs.
func checkPrivate(string, fs.FileInfo) error { return nil }
