//go:build tools

// Package controlplane pins the commands the e2e test bench builds; build.sh builds them
// with `go build`, and this file keeps `go mod tidy` from dropping their modules.
package controlplane

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
