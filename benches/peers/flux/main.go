// peers-flux: Flux's drift detection (github.com/fluxcd/pkg/ssa ResourceManager.Diff, as
// kustomize-controller uses it) on DriftGuard's inputs. See ../README.md.
package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/jsondiff"
	"github.com/fluxcd/pkg/ssa/normalize"
	wjsondiff "github.com/wI2L/jsondiff"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	peers "driftguard.local/peers/common"
)

const (
	modeFluxSSA = "flux-ssa"
	// kustomize-controller main.go controllerName / kustomizev1.GroupVersion.Group
	fieldManager = "kustomize-controller"
	ownerGroup   = "kustomize.toolkit.fluxcd.io"
)

func main() {
	peers.Main(peers.Engine{
		Module: "github.com/fluxcd/pkg/ssa",
		Modes:  []string{modeFluxSSA},
		NeedsCluster: func(string) (bool, string) {
			return true, "flux-ssa needs --kubeconfig: Flux diffs against a server-side apply dry run"
		},
		New: newDiffer,
	})
}

type differ struct {
	rm    *ssa.ResourceManager
	opts  ssa.DiffOptions
	owner string
}

func newDiffer(_ context.Context, _ string, env *peers.Env) (peers.Differ, error) {
	c, err := client.New(env.RestConfig, client.Options{Mapper: env.Mapper})
	if err != nil {
		return nil, err
	}
	// kustomize-controller internal/controller/kustomization_controller.go: the resource manager
	// with owner {Field: controllerName, Group: kustomize.toolkit.fluxcd.io}; the poller is only
	// used for waiting (not for diffs), so nil.
	rm := ssa.NewResourceManager(c, nil, ssa.Owner{Field: fieldManager, Group: ownerGroup})
	// apply(): the exclusion / if-not-present / force selectors it sets on its options.
	opts := ssa.DefaultDiffOptions()
	opts.Exclusions = map[string]string{
		ownerGroup + "/reconcile": "disabled",
		ownerGroup + "/ssa":       "Ignore",
	}
	opts.IfNotPresentSelector = map[string]string{ownerGroup + "/ssa": "IfNotPresent"}
	opts.ForceSelector = map[string]string{ownerGroup + "/force": "enabled"}
	return &differ{rm: rm, opts: opts, owner: env.Opts.Owner}, nil
}

// FetchesLive: ResourceManager.Diff GETs the live object itself.
func (d *differ) FetchesLive() bool { return true }

func (d *differ) Diff(ctx context.Context, desired, _ *unstructured.Unstructured) peers.Outcome {
	// kustomize-controller apply(): normalize.UnstructuredList(objects) before the SSA calls.
	if d.owner != "" {
		// resourceManager.SetOwnerLabels(objects, obj.GetName(), obj.GetNamespace())
		d.rm.SetOwnerLabels([]*unstructured.Unstructured{desired}, d.owner, "flux-system")
	}
	if err := normalize.Unstructured(desired); err != nil {
		return peers.Outcome{Err: err}
	}
	entry, existing, dryRun, err := d.rm.Diff(ctx, desired, d.opts)
	if err != nil {
		return peers.Outcome{Err: err}
	}
	switch entry.Action {
	case ssa.CreatedAction:
		return peers.Outcome{Drifted: true, Missing: true}
	case ssa.ConfiguredAction:
		fields, err := fieldsOf(existing, dryRun)
		return peers.Outcome{Drifted: true, Fields: fields, Err: err}
	case ssa.UnchangedAction, ssa.SkippedAction:
		return peers.Outcome{}
	default:
		return peers.Outcome{Err: fmt.Errorf("unexpected change-set action %q", entry.Action)}
	}
}

// fieldsOf names the drifted fields the way Flux's jsondiff does (ssa/jsondiff/unstructured.go,
// used for drift reports): DiffUnstructured on everything but metadata and status, plus the
// labels and annotations (ResourceManager.hasDrifted compares both maps, so removals count too).
func fieldsOf(existing, dryRun *unstructured.Unstructured) ([]string, error) {
	var paths []string
	patch, err := jsondiff.DiffUnstructured(existing, dryRun)
	if err != nil {
		return nil, err
	}
	for _, op := range patch {
		paths = append(paths, peers.PointerToPath(existing.Object, op.Path))
	}
	for _, field := range []string{"labels", "annotations"} {
		x, _, _ := unstructured.NestedFieldNoCopy(existing.Object, "metadata", field)
		y, _, _ := unstructured.NestedFieldNoCopy(dryRun.Object, "metadata", field)
		if x == nil {
			x = map[string]any{}
		}
		if y == nil {
			y = map[string]any{}
		}
		p, err := wjsondiff.Compare(x, y)
		if err != nil {
			return nil, err
		}
		for _, op := range p {
			root := map[string]any{"metadata": map[string]any{field: x}}
			paths = append(paths, peers.PointerToPath(root, "/metadata/"+field+op.Path))
		}
	}
	sort.Strings(paths)
	return paths, nil
}
