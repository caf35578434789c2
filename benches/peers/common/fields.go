package peers

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// mergeKeys are tried in order to name list items (`containers[name=web]`); a list whose items
// do not all carry one of them with unique values is compared by index (`args[0]`).
var mergeKeys = []string{"name", "mountPath", "devicePath", "containerPort", "port", "ip", "key", "topologyKey"}

// FieldDiffJSON is FieldDiff on two JSON documents.
func FieldDiffJSON(a, b []byte) ([]string, error) {
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return nil, err
	}
	return FieldDiff(x, y), nil
}

// FieldDiff returns the sorted dotted paths of the leaves that differ between a and b (a leaf only
// on one side counts; a subtree only on one side contributes all its leaves). No values are
// returned, only paths.
func FieldDiff(a, b any) []string {
	set := map[string]bool{}
	diffInto(set, "", a, b)
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func join(prefix, key string) string {
	if strings.ContainsAny(key, `.[]" `) || key == "" {
		key = `["` + key + `"]`
		return prefix + key
	}
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func leaves(set map[string]bool, path string, v any) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			set[path] = true
		}
		for k, c := range t {
			leaves(set, join(path, k), c)
		}
	case []any:
		if len(t) == 0 {
			set[path] = true
		}
		keys := itemKeys(t)
		for i, c := range t {
			leaves(set, path+keys[i], c)
		}
	default:
		set[path] = true
	}
}

func itemKeys(l []any) []string {
	out := make([]string, len(l))
	for _, mk := range mergeKeys {
		seen := map[string]bool{}
		ok := len(l) > 0
		for i, it := range l {
			m, isMap := it.(map[string]any)
			if !isMap {
				ok = false
				break
			}
			v, has := m[mk]
			if !has {
				ok = false
				break
			}
			s := fmt.Sprint(v)
			if seen[s] {
				ok = false
				break
			}
			seen[s] = true
			out[i] = "[" + mk + "=" + s + "]"
		}
		if ok {
			return out
		}
	}
	for i := range l {
		out[i] = "[" + strconv.Itoa(i) + "]"
	}
	return out
}

func numEq(a, b any) bool {
	fa, ok1 := toFloat(a)
	fb, ok2 := toFloat(b)
	return ok1 && ok2 && fa == fb
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func diffInto(set map[string]bool, path string, a, b any) {
	if a == nil && b == nil {
		return
	}
	if a == nil {
		leaves(set, path, b)
		return
	}
	if b == nil {
		leaves(set, path, a)
		return
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			set[path] = true
			return
		}
		for k, xv := range x {
			yv, has := y[k]
			if !has {
				leaves(set, join(path, k), xv)
				continue
			}
			diffInto(set, join(path, k), xv, yv)
		}
		for k, yv := range y {
			if _, has := x[k]; !has {
				leaves(set, join(path, k), yv)
			}
		}
	case []any:
		y, ok := b.([]any)
		if !ok {
			set[path] = true
			return
		}
		kx, ky := itemKeys(x), itemKeys(y)
		byKey := len(x) > 0 && len(y) > 0 && !strings.HasPrefix(kx[0], "[0") && sameKeyKind(kx[0], ky[0])
		if byKey {
			iy := map[string]int{}
			for i, k := range ky {
				iy[k] = i
			}
			for i, k := range kx {
				if j, has := iy[k]; has {
					diffInto(set, path+k, x[i], y[j])
					delete(iy, k)
				} else {
					leaves(set, path+k, x[i])
				}
			}
			for k, j := range iy {
				leaves(set, path+k, y[j])
			}
			return
		}
		for i := 0; i < len(x) || i < len(y); i++ {
			p := path + "[" + strconv.Itoa(i) + "]"
			switch {
			case i >= len(x):
				leaves(set, p, y[i])
			case i >= len(y):
				leaves(set, p, x[i])
			default:
				diffInto(set, p, x[i], y[i])
			}
		}
	default:
		if !reflect.DeepEqual(a, b) && !numEq(a, b) {
			set[path] = true
		}
	}
}

func sameKeyKind(a, b string) bool {
	ka, _, _ := strings.Cut(a, "=")
	kb, _, _ := strings.Cut(b, "=")
	return ka == kb
}

// PointerToPath renders an RFC 6901 JSON pointer (as JSON patches from the engines give) as a
// dotted path, looking the tokens up in root to tell list indexes from map keys.
func PointerToPath(root any, ptr string) string {
	if ptr == "" || ptr == "/" {
		return "."
	}
	toks := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	path := ""
	cur := root
	for _, t := range toks {
		t = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case []any:
			path += "[" + t + "]"
			if i, err := strconv.Atoi(t); err == nil && i >= 0 && i < len(c) {
				cur = c[i]
			} else {
				cur = nil
			}
		case map[string]any:
			path = join(path, t)
			cur = c[t]
		default:
			if _, err := strconv.Atoi(t); err == nil && cur == nil && t != "" {
				// unknown container: a numeric token is most likely a list index
				path += "[" + t + "]"
			} else {
				path = join(path, t)
			}
			cur = nil
		}
	}
	return path
}
