// Package peers holds what the peer diff drivers (benches/peers/argocd, benches/peers/flux) share:
// the command line, reading desired manifests and live dumps, fetching live objects, the field
// differ, and the JSON report. Each driver only supplies its engine's diff for one object.
package peers

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// Options is the parsed command line.
type Options struct {
	Mode       string
	Desired    []string
	LiveDump   string
	Kubeconfig string
	Out        string
	// Owner, when set, makes the drivers mark desired objects the way the controllers do before
	// diffing: Argo CD's repo-server adds the tracking annotation
	// argocd.argoproj.io/tracking-id=OWNER:group/Kind:namespace/name; kustomize-controller adds
	// the labels kustomize.toolkit.fluxcd.io/name=OWNER, .../namespace=flux-system.
	Owner string
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Env is what a driver gets to build its differ: the cluster (when --kubeconfig is given).
type Env struct {
	Opts       Options
	RestConfig *rest.Config      // nil with --live-dump
	Mapper     meta.RESTMapper   // nil with --live-dump
	Dynamic    dynamic.Interface // nil with --live-dump
}

// Outcome is one object's result from an engine.
type Outcome struct {
	Drifted bool
	Missing bool
	Fields  []string
	Err     error
}

// Differ diffs one desired object against its live counterpart (nil when absent).
type Differ interface {
	Diff(ctx context.Context, desired, live *unstructured.Unstructured) Outcome
}

// SelfFetching is implemented by differs whose engine reads the live object itself
// (then the driver does not GET it first; live is passed as nil).
type SelfFetching interface{ FetchesLive() bool }

// Engine describes one driver.
type Engine struct {
	Module string   // the engine's Go module path (its version is read from the build info)
	Modes  []string // modes this binary implements
	// NeedsCluster reports (with a reason) a mode that cannot run on a dump.
	NeedsCluster func(mode string) (bool, string)
	// New builds the differ for a mode; it is set-up (not timed as the diff phase).
	New func(ctx context.Context, mode string, env *Env) (Differ, error)
}

// ObjectReport is one entry of the report's objects list.
type ObjectReport struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Name       string   `json:"name"`
	Drifted    bool     `json:"drifted"`
	Missing    bool     `json:"missing"`
	Fields     []string `json:"fields"`
	Error      *string  `json:"error"`
}

// Report is the JSON document written on stdout or --out.
type Report struct {
	Mode             string         `json:"mode"`
	Engine           string         `json:"engine"`
	EngineVersion    string         `json:"engine_version"`
	K8sLibs          string         `json:"k8s_libs"`
	Unsupported      bool           `json:"unsupported,omitempty"`
	Reason           string         `json:"reason,omitempty"`
	Objects          []ObjectReport `json:"objects"`
	Seconds          float64        `json:"seconds"`
	SetupSeconds     float64        `json:"setup_seconds"`
	PeakRSSKB        int64          `json:"peak_rss_kb"`
	ObjectsPerSecond float64        `json:"objects_per_second"`
}

func usage(e Engine) {
	fmt.Fprintf(os.Stderr, "usage: %s --mode MODE --desired PATH [--desired PATH ...] (--live-dump FILE | --kubeconfig FILE) [--out FILE] [--owner NAME]\nmodes: %s\n",
		filepath.Base(os.Args[0]), strings.Join(e.Modes, ", "))
}

// Main runs a driver; it never returns.
func Main(e Engine) {
	var o Options
	var desired multiFlag
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	fs.Usage = func() { usage(e) }
	fs.StringVar(&o.Mode, "mode", "", "engine mode")
	fs.Var(&desired, "desired", "desired manifests (file or directory; repeatable)")
	fs.StringVar(&o.LiveDump, "live-dump", "", "kubectl get -o yaml|json List of live objects")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to read live objects from")
	fs.StringVar(&o.Out, "out", "", "write the report here instead of stdout")
	fs.StringVar(&o.Owner, "owner", "", "mark desired objects with the controller's tracking annotation/owner labels for this app/kustomization name (default: off)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	o.Desired = desired
	valid := false
	for _, m := range e.Modes {
		valid = valid || m == o.Mode
	}
	if !valid || len(o.Desired) == 0 || (o.LiveDump == "") == (o.Kubeconfig == "") || fs.NArg() > 0 {
		usage(e)
		os.Exit(2)
	}
	rep, err := run(e, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "peers: %v\n", err)
		os.Exit(1)
	}
	if err := writeReport(o.Out, rep); err != nil {
		fmt.Fprintf(os.Stderr, "peers: %v\n", err)
		os.Exit(1)
	}
	if rep.Unsupported {
		os.Exit(3)
	}
	os.Exit(0)
}

func writeReport(out string, rep *Report) error {
	var w io.Writer = os.Stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(rep)
}

// ModuleVersion returns the version of a dependency from the build info (after replaces).
func ModuleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "not linked"
}

func run(e Engine, o Options) (*Report, error) {
	ctx := context.Background()
	rep := &Report{
		Mode: o.Mode, Engine: e.Module, EngineVersion: ModuleVersion(e.Module),
		K8sLibs: ModuleVersion("k8s.io/apimachinery"), Objects: []ObjectReport{},
	}
	if o.Kubeconfig == "" && e.NeedsCluster != nil {
		if needs, why := e.NeedsCluster(o.Mode); needs {
			rep.Unsupported, rep.Reason = true, why
			rep.PeakRSSKB = PeakRSSKB()
			return rep, nil
		}
	}
	setupStart := time.Now()
	env := &Env{Opts: o}
	var scope func(schema.GroupVersionKind) (bool, error)
	if o.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		cfg.QPS, cfg.Burst = 1000, 2000 // no client-side throttling in a benchmark
		env.RestConfig = cfg
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			return nil, err
		}
		env.Mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
		env.Dynamic, err = dynamic.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		scope = func(gvk schema.GroupVersionKind) (bool, error) {
			m, err := env.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return false, err
			}
			return m.Scope.Name() == meta.RESTScopeNameNamespace, nil
		}
	} else {
		scope = func(gvk schema.GroupVersionKind) (bool, error) { return !clusterScopedKinds[gvk.GroupKind()], nil }
	}
	desired, err := LoadDesired(o.Desired)
	if err != nil {
		return nil, err
	}
	scopeErr := map[int]error{}
	for i, d := range desired {
		ns, err := scope(d.GroupVersionKind())
		switch {
		case err != nil:
			scopeErr[i] = err
		case ns && d.GetNamespace() == "":
			d.SetNamespace("default")
		case !ns:
			d.SetNamespace("")
		}
	}
	var dump map[string]*unstructured.Unstructured
	if o.LiveDump != "" {
		if dump, err = LoadLiveDump(o.LiveDump); err != nil {
			return nil, err
		}
	}
	differ, err := e.New(ctx, o.Mode, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Mode, err)
	}
	selfFetching := false
	if sf, ok := differ.(SelfFetching); ok {
		selfFetching = sf.FetchesLive()
	}
	rep.SetupSeconds = time.Since(setupStart).Seconds()

	start := time.Now()
	for i, d := range desired {
		r := ObjectReport{APIVersion: d.GetAPIVersion(), Kind: d.GetKind(), Namespace: d.GetNamespace(), Name: d.GetName(), Fields: []string{}}
		var out Outcome
		if err := scopeErr[i]; err != nil {
			out.Err = err
		} else {
			var live *unstructured.Unstructured
			var getErr error
			switch {
			case dump != nil:
				live = dump[Key(d)]
			case !selfFetching:
				live, getErr = getLive(ctx, env, d)
			}
			if getErr != nil {
				out.Err = getErr
			} else {
				out = differ.Diff(ctx, d.DeepCopy(), live)
				if live == nil && !selfFetching {
					out.Missing, out.Drifted = true, true
				}
			}
		}
		r.Drifted, r.Missing = out.Drifted, out.Missing
		if out.Fields != nil {
			r.Fields = out.Fields
		}
		if out.Err != nil {
			s := out.Err.Error()
			r.Error = &s
		}
		rep.Objects = append(rep.Objects, r)
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.ObjectsPerSecond = float64(len(desired)) / rep.Seconds
	}
	rep.PeakRSSKB = PeakRSSKB()
	return rep, nil
}

func getLive(ctx context.Context, env *Env, d *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := d.GroupVersionKind()
	m, err := env.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	var ri dynamic.ResourceInterface = env.Dynamic.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = env.Dynamic.Resource(m.Resource).Namespace(d.GetNamespace())
	}
	live, err := ri.Get(ctx, d.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return live, err
}

var clusterScopedKinds = map[schema.GroupKind]bool{
	{Group: "", Kind: "Namespace"}:                                                  true,
	{Group: "", Kind: "PersistentVolume"}:                                           true,
	{Group: "", Kind: "Node"}:                                                       true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                       true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:               true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                                 true,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                             true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:   true,
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:                           true,
}

// Key identifies an object by group, kind, namespace and name (not version).
func Key(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	return gvk.Group + "/" + gvk.Kind + "/" + u.GetNamespace() + "/" + u.GetName()
}

// LoadDesired reads files and directories of manifests the way `kubectl apply -f` does.
func LoadDesired(paths []string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		var files []string
		if st.IsDir() {
			err = filepath.WalkDir(p, func(f string, de os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				switch strings.ToLower(filepath.Ext(f)) {
				case ".yaml", ".yml", ".json":
					if !de.IsDir() {
						files = append(files, f)
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			sort.Strings(files)
		} else {
			files = []string{p}
		}
		for _, f := range files {
			objs, err := decodeFile(f)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func decodeFile(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, expandList(&unstructured.Unstructured{Object: m})...)
	}
}

func expandList(u *unstructured.Unstructured) []*unstructured.Unstructured {
	if !u.IsList() {
		return []*unstructured.Unstructured{u}
	}
	items, _, _ := unstructured.NestedSlice(u.Object, "items")
	var out []*unstructured.Unstructured
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, expandList(&unstructured.Unstructured{Object: m})...)
		}
	}
	return out
}

// LoadLiveDump reads a kubectl List (yaml or json; several documents allowed) keyed by Key.
func LoadLiveDump(path string) (map[string]*unstructured.Unstructured, error) {
	objs, err := decodeFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make(map[string]*unstructured.Unstructured, len(objs))
	for _, o := range objs {
		out[Key(o)] = o
	}
	return out, nil
}

// PeakRSSKB is VmHWM from /proc/self/status.
func PeakRSSKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return -1
}
