package stripefake

import (
	"encoding/json"
	"net/http"
	"strings"
)

// alreadyExpanded tells whether an expand path names something the fake
// already renders in full (prices in items) or always renders null, so that
// expanding it changes nothing.
func alreadyExpanded(path string) bool {
	switch path {
	case "items", "items.data.price", "items.data.plan", "lines", "lines.data.price",
		"default_payment_method", "default_source", "pending_setup_intent", "schedule",
		"discount", "test_clock", "payment_intent", "charge", "invoice_settings.default_payment_method":
		return true
	}
	return false
}

// expandLocked replaces id fields of raw named by expand paths (each with
// prefix, "data." for lists, stripped) by the objects they name; callers hold
// mu. An unknown path is a 400, as with Stripe.
func (s *Server) expandLocked(raw []byte, prefix string, paths []string) ([]byte, error) {
	if len(paths) == 0 {
		return raw, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for _, full := range paths {
		p, ok := strings.CutPrefix(full, prefix)
		if !ok {
			return nil, invalid("expand", "", "This property cannot be expanded (%s).", full)
		}
		if alreadyExpanded(p) {
			continue
		}
		var id string
		if json.Unmarshal(m[p], &id) != nil || id == "" {
			if _, present := m[p]; present {
				continue // null or already an object
			}
			return nil, invalid("expand", "", "This property cannot be expanded (%s).", full)
		}
		obj, err := s.objectJSONLocked(p, id)
		if err != nil {
			return nil, err
		}
		m[p] = obj
	}
	return json.Marshal(m)
}

// selfRendering is a record that keeps its own JSON: a subscription or an
// invoice.
type selfRendering interface {
	record
	json() []byte
}

// expandedRender returns how a request renders a kind of object: its JSON
// expanded along expand (each under prefix, "data." in lists), in version;
// it runs under the read lock.
func expandedRender[T selfRendering](s *Server, kind, version, prefix string, expand []string) func(T) ([]byte, error) {
	return func(v T) ([]byte, error) {
		b, err := s.expandLocked(v.json(), prefix, expand)
		return renderObject(kind, b, version), err
	}
}

// serveExpandedGet answers GET of one subscription or invoice of tbl by the
// {id} of the path, expanded as the request asks, in its API version.
func serveExpandedGet[T selfRendering](s *Server, w http.ResponseWriter, r *http.Request, tbl *table[T]) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	render := expandedRender[T](s, tbl.noun, s.readVersion(r), "", repeated(form, "expand"))
	serveGet(s, w, r, tbl.noun, tbl.get, render)
}

// objectJSONLocked renders the object an id field names.
func (s *Server) objectJSONLocked(field, id string) ([]byte, error) {
	switch field {
	case "customer":
		if c, ok := s.customers.get(id); ok {
			return customerJSON(c), nil
		}
	case "latest_invoice", "invoice":
		if inv, ok := s.invoices.get(id); ok {
			return inv.json(), nil
		}
	case "subscription":
		if sub, ok := s.subs.get(id); ok {
			return sub.json(), nil
		}
	case "product":
		if p, ok := s.products.get(id); ok {
			return json.Marshal(p)
		}
	default:
		return nil, invalid("expand", "", "This property cannot be expanded (%s).", field)
	}
	return nil, notFound(field, id)
}
