// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package testenv runs a real, local Kubernetes control plane with fake
// nodes, plus Prometheus and Alertmanager, for tierscaler's integration and
// end-to-end tests and for the local cluster of hack/cluster.
//
// An environment is, all on 127.0.0.1 with free ports (several can run at
// once):
//
//   - etcd;
//   - kube-apiserver with RBAC, a generated CA, service-account keys and an
//     admin client certificate (group system:masters), and an admin
//     kubeconfig at <Dir>/kubeconfig;
//   - kube-scheduler and kube-controller-manager;
//   - kwok, which runs fake nodes: pods are scheduled onto them and marked
//     Running and Ready, but no container runs;
//   - Options.Nodes fake nodes (default 4 × 4 CPU, 8Gi, 110 pods) and the
//     namespace openfaas-fn;
//   - Prometheus (1s scrape interval by default, lifecycle API on, alerts to
//     the Alertmanager) and Alertmanager (gossip off).
//
// The binaries come from hack/tools.sh (`make tools`): the directory in
// $TIERSCALER_BIN_DIR, else the one `hack/tools.sh --bin-dir` prints;
// prometheus and alertmanager come from PATH.
//
// Each component logs to <Dir>/<component>.log; an error starting one is a
// *ComponentError naming the component and its log, with the log's last
// lines. Each process leads its own process group, which Stop signals
// (SIGTERM, then SIGKILL). Unless Options.Detach is set, the processes also
// die with the program that started them.
//
// From a package's integration tests:
//
//	//go:build integration
//
//	func TestMain(m *testing.M) {
//		os.Exit(testenv.Run(m, testenv.Options{}))
//	}
//
//	func TestSomething(t *testing.T) {
//		env := testenv.Current()
//		_, err := env.Clientset.AppsV1().Deployments(testenv.FunctionNamespace).Create(...)
//		require.NoError(t, env.AddScrapeTarget("gateway", emulatorAddr))
//		...
//	}
//
// A test that needs its own environment calls Start and defers Stop.
// hack/check-leftovers.sh lists processes that environments left behind.
package testenv
