// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
)

// The pod and service address ranges of the fake cluster. Pod IPs are
// handed out by kwok; nothing routes them.
const (
	serviceCIDR = "10.0.0.0/24"
	podCIDR     = "10.244.0.1/16"
	fakeNodeIP  = "10.0.0.1"
)

func (e *Env) etcd() component {
	return component{
		name:  Etcd,
		bin:   e.bins.etcd,
		ports: []string{portEtcd, portEtcdPeer},
		args: func() []string {
			client := "http://" + hostPort(e.port(portEtcd))
			peer := "http://" + hostPort(e.port(portEtcdPeer))
			return []string{
				"--name=default",
				"--data-dir=" + filepath.Join(e.Dir, "etcd"),
				"--listen-client-urls=" + client,
				"--advertise-client-urls=" + client,
				"--listen-peer-urls=" + peer,
				"--initial-advertise-peer-urls=" + peer,
				"--initial-cluster=default=" + peer,
				"--initial-cluster-state=new",
				// Throwaway data: durability is not worth the disk latency.
				"--unsafe-no-fsync",
			}
		},
		ready: func(ctx context.Context) error {
			return e.probe(ctx, "http://"+hostPort(e.port(portEtcd))+"/health", `"health":"true"`)
		},
	}
}

func (e *Env) apiserver() component {
	return component{
		name:  KubeAPIServer,
		bin:   e.bins.apiserver,
		ports: []string{portAPIServer},
		args: func() []string {
			return []string{
				"--etcd-servers=http://" + hostPort(e.port(portEtcd)),
				"--bind-address=127.0.0.1",
				"--advertise-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(e.port(portAPIServer)),
				"--cert-dir=" + filepath.Join(e.Dir, "pki"),
				"--tls-cert-file=" + e.pki.servingCert,
				"--tls-private-key-file=" + e.pki.servingKey,
				"--client-ca-file=" + e.pki.caFile,
				// The front-proxy CA that kube-scheduler and
				// kube-controller-manager expect in the
				// extension-apiserver-authentication ConfigMap; no
				// certificate with the allowed name is ever issued.
				"--requestheader-client-ca-file=" + e.pki.caFile,
				"--requestheader-allowed-names=front-proxy-client",
				"--requestheader-username-headers=X-Remote-User",
				"--requestheader-group-headers=X-Remote-Group",
				"--requestheader-extra-headers-prefix=X-Remote-Extra-",
				"--service-account-issuer=https://kubernetes.default.svc",
				"--service-account-key-file=" + e.pki.saPubFile,
				"--service-account-signing-key-file=" + e.pki.saKeyFile,
				"--authorization-mode=RBAC",
				"--service-cluster-ip-range=" + serviceCIDR,
				// There is no kube-proxy or real endpoint for the
				// "kubernetes" Service on loopback.
				"--endpoint-reconciler-type=none",
				"--allow-privileged=true",
				"--profiling=false",
			}
		},
		ready: func(ctx context.Context) error {
			return e.probe(ctx, "https://"+hostPort(e.port(portAPIServer))+"/readyz", "ok")
		},
	}
}

func (e *Env) scheduler() component {
	return component{
		name:  KubeScheduler,
		bin:   e.bins.scheduler,
		ports: []string{portScheduler},
		args: func() []string {
			return []string{
				"--kubeconfig=" + e.Kubeconfig,
				"--authentication-kubeconfig=" + e.Kubeconfig,
				"--authorization-kubeconfig=" + e.Kubeconfig,
				"--bind-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(e.port(portScheduler)),
				"--tls-cert-file=" + e.pki.servingCert,
				"--tls-private-key-file=" + e.pki.servingKey,
				"--leader-elect=false",
				"--profiling=false",
			}
		},
		ready: func(ctx context.Context) error {
			return e.probe(ctx, "https://"+hostPort(e.port(portScheduler))+"/healthz", "ok")
		},
	}
}

func (e *Env) controllerManager() component {
	return component{
		name:  KubeControllerManager,
		bin:   e.bins.controllerMgr,
		ports: []string{portControllerManager},
		args: func() []string {
			return []string{
				"--kubeconfig=" + e.Kubeconfig,
				"--authentication-kubeconfig=" + e.Kubeconfig,
				"--authorization-kubeconfig=" + e.Kubeconfig,
				"--bind-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(e.port(portControllerManager)),
				"--tls-cert-file=" + e.pki.servingCert,
				"--tls-private-key-file=" + e.pki.servingKey,
				"--leader-elect=false",
				// No node IPAM or node lifecycle: kwok owns the fake nodes.
				// No legacy service-account token secrets.
				"--controllers=*,-nodeipam,-nodelifecycle,-serviceaccount-token",
				"--use-service-account-credentials=false",
				// The default 20 requests/s makes thousands of test
				// Deployments take minutes to get their ReplicaSets.
				"--kube-api-qps=100",
				"--kube-api-burst=200",
				"--root-ca-file=" + e.pki.caFile,
				"--cluster-signing-cert-file=" + e.pki.caFile,
				"--cluster-signing-key-file=" + e.pki.caKeyFile,
				"--profiling=false",
			}
		},
		ready: func(ctx context.Context) error {
			return e.probe(ctx, "https://"+hostPort(e.port(portControllerManager))+"/healthz", "ok")
		},
	}
}

func (e *Env) kwok() component {
	return component{
		name:  Kwok,
		bin:   e.bins.kwok,
		ports: []string{portKwok},
		args: func() []string {
			return []string{
				"--kubeconfig=" + e.Kubeconfig,
				"--config=" + e.bins.kwokStages,
				"--manage-all-nodes=false",
				"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
				"--cidr=" + podCIDR,
				"--node-ip=" + fakeNodeIP,
				"--server-address=" + hostPort(e.port(portKwok)),
			}
		},
		ready: func(ctx context.Context) error {
			return e.probe(ctx, "http://"+hostPort(e.port(portKwok))+"/healthz", "")
		},
	}
}

// probe GETs url and wants status 200 and, if want is not empty, a body
// containing want.
func (e *Env) probe(ctx context.Context, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := e.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	if want != "" && !bytes.Contains(body, []byte(want)) {
		return fmt.Errorf("GET %s: body %q lacks %q", url, bytes.TrimSpace(body), want)
	}
	return nil
}
