//go:build tools

// Package opa pins the command build.sh builds with `go build`; this file keeps
// `go mod tidy` from dropping its module.
package opa

import _ "github.com/open-policy-agent/opa"
