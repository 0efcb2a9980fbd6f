// etcd as the Kubernetes test suite runs it: the upstream server's own entry point, pinned in go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
