//go:build tools

// Package helm pins the command build.sh builds with `go build`; this file keeps
// `go mod tidy` from dropping its module.
package helm

import _ "helm.sh/helm/v3/cmd/helm"
