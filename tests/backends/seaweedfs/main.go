//go:build tools

// Package seaweedfs only pins the weed command for `go build`; the build tag
// keeps this file out of every build (a main package cannot be imported).
package seaweedfs

import _ "github.com/seaweedfs/seaweedfs/weed"
