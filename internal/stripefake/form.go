package stripefake

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Helpers that read Stripe's form encoding: nested keys in brackets
// (metadata[user_id], items[0][price], created[gte]) and arrays either
// indexed (types[0], as stripe-go sends them) or bare (types[]).

// bracketed returns the values of keys prefix[k], by k. ok is false when no
// such key is present.
func bracketed(form url.Values, prefix string) (map[string]string, bool) {
	out := map[string]string{}
	found := false
	for k, vs := range form {
		rest, ok := strings.CutPrefix(k, prefix+"[")
		if !ok || !strings.HasSuffix(rest, "]") || len(vs) == 0 {
			continue
		}
		inner := strings.TrimSuffix(rest, "]")
		if strings.ContainsAny(inner, "[]") {
			continue
		}
		out[inner] = vs[len(vs)-1]
		found = true
	}
	return out, found
}

// indexed returns the fields of keys prefix[N][field], by N then field, for
// items[0][price] and the like.
func indexed(form url.Values, prefix string) map[int]map[string]string {
	out := map[int]map[string]string{}
	for k, vs := range form {
		rest, ok := strings.CutPrefix(k, prefix+"[")
		if !ok || len(vs) == 0 {
			continue
		}
		idx, field, ok := strings.Cut(rest, "][")
		if !ok || !strings.HasSuffix(field, "]") {
			continue
		}
		n, err := strconv.Atoi(idx)
		if err != nil {
			continue
		}
		if out[n] == nil {
			out[n] = map[string]string{}
		}
		out[n][strings.TrimSuffix(field, "]")] = vs[len(vs)-1]
	}
	return out
}

// repeated returns the values of an array parameter: name[], name[N] (in
// index order) or a bare name.
func repeated(form url.Values, name string) []string {
	var out []string
	out = append(out, form[name]...)
	out = append(out, form[name+"[]"]...)
	byIndex := map[int]string{}
	for k, vs := range form {
		rest, ok := strings.CutPrefix(k, name+"[")
		if !ok || !strings.HasSuffix(rest, "]") || len(vs) == 0 {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(rest, "]")); err == nil {
			byIndex[n] = vs[len(vs)-1]
		}
	}
	for _, n := range slices.Sorted(maps.Keys(byIndex)) {
		out = append(out, byIndex[n])
	}
	return out
}

// intParam parses an integer parameter; ok is false when it is absent.
func intParam(form url.Values, name string) (v int64, ok bool, err error) {
	if !form.Has(name) {
		return 0, false, nil
	}
	s := form.Get(name)
	v, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil {
		return 0, true, invalid(name, "parameter_invalid_integer", "Invalid integer: %s", s)
	}
	return v, true, nil
}

// boolParam parses a boolean parameter; ok is false when it is absent.
func boolParam(form url.Values, name string) (v bool, ok bool, err error) {
	if !form.Has(name) {
		return false, false, nil
	}
	switch s := form.Get(name); s {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	default:
		return false, true, invalid(name, "", "Invalid boolean: %s", s)
	}
}

// metadataUpdate reads Stripe's metadata update: metadata[k]=v sets,
// metadata[k]= (empty) deletes, and a bare metadata= clears everything.
// It returns nil, false when the request says nothing about metadata.
type metadataUpdate struct {
	clear bool
	set   map[string]string // "" = delete
}

func parseMetadata(form url.Values) (metadataUpdate, bool) {
	set, found := bracketed(form, "metadata")
	clear := form.Has("metadata") && form.Get("metadata") == ""
	return metadataUpdate{clear: clear, set: set}, found || clear
}

// apply returns md with the update applied (md itself is not modified).
func (u metadataUpdate) apply(md map[string]string) map[string]string {
	out := map[string]string{}
	if !u.clear {
		maps.Copy(out, md)
	}
	for k, v := range u.set {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// mergeMetadata applies helper-style metadata: keys with "" are deleted.
func mergeMetadata(md, changes map[string]string) map[string]string {
	return metadataUpdate{set: changes}.apply(md)
}
