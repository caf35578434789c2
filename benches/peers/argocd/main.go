// peers-argocd: Argo CD's diff (github.com/argoproj/gitops-engine pkg/diff, as Argo CD v3.2.12's
// application controller calls it) on DriftGuard's inputs. See ../README.md.
package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/argo/normalizers"
	"github.com/argoproj/gitops-engine/pkg/diff"
	"github.com/argoproj/gitops-engine/pkg/utils/kube"
	"github.com/argoproj/gitops-engine/pkg/utils/tracing"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/managedfields"

	peers "driftguard.local/peers/common"
)

const (
	modeLegacy     = "argocd-legacy"
	modeStructured = "argocd-structured"
	modeServerSide = "argocd-server-side"
	// common.ArgoCDSSAManager in argo-cd v3.2.12 common/common.go
	argoCDSSAManager = "argocd-controller"
)

func main() {
	peers.Main(peers.Engine{
		Module: "github.com/argoproj/gitops-engine",
		Modes:  []string{modeLegacy, modeStructured, modeServerSide},
		NeedsCluster: func(mode string) (bool, string) {
			switch mode {
			case modeStructured:
				return true, "argocd-structured needs --kubeconfig: the structured-merge diff needs the cluster's OpenAPI schema (GVK parser)"
			case modeServerSide:
				return true, "argocd-server-side needs --kubeconfig: it runs a server-side apply dry run"
			}
			return false, ""
		},
		New: newDiffer,
	})
}

// composableNormalizer is util/argo/diff/diff.go's (unexported there): runs normalizers in order.
type composableNormalizer struct{ normalizers []diff.Normalizer }

func (n *composableNormalizer) Normalize(un *unstructured.Unstructured) error {
	var errs []error
	for i := range n.normalizers {
		if err := n.normalizers[i].Normalize(un); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// defaultResourceOverrides is what util/settings/settings.go GetResourceOverrides returns for an
// argocd-cm without resource.customizations: the default compare option
// ignoreResourceStatusField=all adds an ignoreDifferences /status override for */*.
func defaultResourceOverrides() map[string]v1alpha1.ResourceOverride {
	return map[string]v1alpha1.ResourceOverride{
		"*/*": {IgnoreDifferences: v1alpha1.OverrideIgnoreDiff{JSONPointers: []string{"/status"}}},
	}
}

type differ struct {
	opts  []diff.Option
	owner string
}

func newDiffer(_ context.Context, mode string, env *peers.Env) (peers.Differ, error) {
	overrides := defaultResourceOverrides()
	// util/argo/diff/diff.go newDiffNormalizer: the ignore normalizer (app ignoreDifferences: none,
	// plus the overrides) then the known-types normalizer.
	ignoreNorm, err := normalizers.NewIgnoreNormalizer([]v1alpha1.ResourceIgnoreDifferences{}, overrides,
		normalizers.IgnoreNormalizerOpts{JQExecutionTimeout: normalizers.DefaultJQExecutionTimeout})
	if err != nil {
		return nil, err
	}
	knownTypesNorm, err := normalizers.NewKnownTypesNormalizer(overrides)
	if err != nil {
		return nil, err
	}
	norm := &composableNormalizer{normalizers: []diff.Normalizer{ignoreNorm, knownTypesNorm}}

	var gvkParser *managedfields.GvkParser
	var applier diff.KubeApplier
	if env.RestConfig != nil {
		// The controller's cluster cache loads the OpenAPI schema and GVK parser this way
		// (gitops-engine pkg/cache/cluster.go -> kubectl.LoadOpenAPISchema).
		kubectl := &kube.KubectlCmd{Log: logr.Discard(), Tracer: tracing.NopTracer{}}
		openAPISchema, parser, err := kubectl.LoadOpenAPISchema(env.RestConfig)
		if err != nil {
			if mode != modeLegacy {
				return nil, fmt.Errorf("loading OpenAPI schema: %w", err)
			}
		}
		gvkParser = parser
		if mode == modeServerSide {
			// controller/sync.go getServerSideDiffDryRunApplier -> util/kube/kubectl.go
			// ManageServerSideDiffDryRuns -> gitops-engine kube.ManageServerSideDiffDryRuns
			a, _, err := kube.ManageServerSideDiffDryRuns(env.RestConfig, openAPISchema, tracing.NopTracer{}, logr.Discard(),
				func(_ string) (kube.CleanupFunc, error) { return func() {}, nil })
			if err != nil {
				return nil, err
			}
			applier = a
		}
	}

	// util/argo/diff/diff.go StateDiffs, with the values controller/state.go CompareAppState
	// passes for an Application without compare-options annotations:
	opts := []diff.Option{
		diff.WithNormalizer(norm),
		diff.IgnoreAggregatedRoles(false), // settings.GetDefaultDiffOptions: IgnoreAggregatedRoles false
		diff.WithStructuredMergeDiff(mode == modeStructured),
		diff.WithGVKParser(gvkParser),
		diff.WithManager(argoCDSSAManager),
		diff.WithServerSideDiff(mode == modeServerSide),
		diff.WithIgnoreMutationWebhook(true), // NewDiffConfigBuilder default
		diff.WithLogr(logr.Discard()),
	}
	if applier != nil {
		opts = append(opts, diff.WithServerSideDryRunner(diff.NewK8sServerSideDryRunner(applier)))
	}
	return &differ{opts: opts, owner: env.Opts.Owner}, nil
}

func (d *differ) Diff(_ context.Context, desired, live *unstructured.Unstructured) peers.Outcome {
	// util/argo/diff/diff.go preDiffNormalize works on deep copies (resource tracking normalization
	// is a no-op here: neither side carries Argo CD tracking metadata).
	if d.owner != "" {
		// reposerver/repository/repository.go GenerateManifests -> resourceTracking.SetAppInstance
		// with the v3 default tracking method (annotation).
		gvk := desired.GroupVersionKind()
		ann := desired.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann["argocd.argoproj.io/tracking-id"] = fmt.Sprintf("%s:%s/%s:%s/%s", d.owner, gvk.Group, gvk.Kind, desired.GetNamespace(), desired.GetName())
		desired.SetAnnotations(ann)
	}
	if live != nil {
		live = live.DeepCopy()
	}
	res, err := diff.Diff(desired, live, d.opts...)
	if err != nil {
		return peers.Outcome{Err: err}
	}
	out := peers.Outcome{Drifted: res.Modified}
	if res.Modified && live != nil {
		fields, err := peers.FieldDiffJSON(res.NormalizedLive, res.PredictedLive)
		if err != nil {
			out.Err = err
		}
		out.Fields = fields
	}
	return out
}
