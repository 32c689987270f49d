package stripefake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/stripe/stripe-go/v76"
)

// CustomerParams describes a customer to create.
type CustomerParams struct {
	// Email, Name and Description are optional; empty ones read as null.
	Email       string
	Name        string
	Description string
	// Metadata is the customer's metadata.
	Metadata map[string]string
}

// CreateCustomer creates a customer and emits customer.created.
func (s *Server) CreateCustomer(p CustomerParams) (*stripe.Customer, error) {
	s.mu.Lock()
	c := s.createCustomerLocked(p, reqInfo{})
	b, err := json.Marshal(c)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("marshal customer: %w", err)
	}
	return decodeAs[stripe.Customer](b)
}

func (s *Server) createCustomerLocked(p CustomerParams, rq reqInfo) *customer {
	c := s.newCustomerLocked(p)
	s.customers.insert(c)
	b, _ := json.Marshal(c) // model structs always marshal
	s.emitLocked("customer.created", "customer", b, nil, rq)
	return c
}

func (s *Server) newCustomerLocked(p CustomerParams) *customer {
	id := s.newIDLocked("cus_")
	return &customer{
		ID: id, Object: "customer", Created: s.nowLocked(), Description: strPtr(p.Description),
		Email: strPtr(p.Email), InvoicePrefix: strings.ToUpper(id[4:12]), Metadata: mergeMetadata(nil, p.Metadata),
		Name: strPtr(p.Name), NextInvoiceSequence: 1, PreferredLocales: []string{}, TaxExempt: "none",
	}
}

// SetCustomerMetadata merges metadata into a customer's (a "" value deletes
// the key) and emits customer.updated.
func (s *Server) SetCustomerMetadata(id string, metadata map[string]string) (*stripe.Customer, error) {
	b, err := s.updateCustomer(id, reqInfo{}, func(c *customer) error {
		c.Metadata = mergeMetadata(c.Metadata, metadata)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("set customer %s metadata: %w", id, err)
	}
	return decodeAs[stripe.Customer](b)
}

// updateCustomer applies change to a live customer and emits
// customer.updated with previous_attributes when something changed.
func (s *Server) updateCustomer(id string, rq reqInfo, change func(*customer) error) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.customers.get(id)
	if !ok || c.deleted {
		return nil, notFound("customer", id)
	}
	before, _ := json.Marshal(c)
	if err := change(c); err != nil {
		return nil, err
	}
	after, _ := json.Marshal(c)
	if prev := previousAttributes(before, after); prev != nil {
		s.emitLocked("customer.updated", "customer", after, prev, rq)
	}
	return after, nil
}

// DeleteCustomer cancels the customer's subscriptions (each emitting
// customer.subscription.deleted), then deletes the customer (emitting
// customer.deleted). Later reads answer the deleted stub.
func (s *Server) DeleteCustomer(id string) error {
	if err := s.deleteCustomer(id, reqInfo{}); err != nil {
		return fmt.Errorf("delete customer %s: %w", id, err)
	}
	return nil
}

func (s *Server) deleteCustomer(id string, rq reqInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.customers.get(id)
	if !ok || c.deleted {
		return notFound("customer", id)
	}
	for _, subID := range s.custSubs[id] {
		sub, _ := s.subs.get(subID)
		if sub.Status == "canceled" || sub.Status == "incomplete_expired" {
			continue
		}
		s.cancelLocked(sub, rq)
	}
	b, _ := json.Marshal(c)
	c.deleted = true
	s.emitLocked("customer.deleted", "customer", b, nil, rq)
	return nil
}

// customerJSON renders a customer, or its deleted stub.
func customerJSON(c *customer) []byte {
	var v any = c
	if c.deleted {
		v = deletedStub{ID: c.ID, Object: "customer", Deleted: true}
	}
	b, _ := json.Marshal(v) // model structs always marshal
	return b
}

// renderCustomer is customerJSON as a list or a GET renders.
func renderCustomer(c *customer) ([]byte, error) { return customerJSON(c), nil }

func (s *Server) handleCreateCustomer(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	md, _ := parseMetadata(form)
	p := CustomerParams{
		Email: form.Get("email"), Name: form.Get("name"), Description: form.Get("description"),
		Metadata: md.apply(nil),
	}
	s.mu.Lock()
	c := s.createCustomerLocked(p, requestInfo(w, r))
	b := customerJSON(c)
	s.mu.Unlock()
	writeRaw(w, http.StatusOK, b)
}

func (s *Server) handleGetCustomer(w http.ResponseWriter, r *http.Request) {
	serveGet(s, w, r, "customer", s.customers.get, renderCustomer)
}

func (s *Server) handleUpdateCustomer(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	md, hasMD := parseMetadata(form)
	b, err := s.updateCustomer(r.PathValue("id"), requestInfo(w, r), func(c *customer) error {
		if hasMD {
			c.Metadata = md.apply(c.Metadata)
		}
		if form.Has("email") {
			c.Email = strPtr(form.Get("email"))
		}
		if form.Has("name") {
			c.Name = strPtr(form.Get("name"))
		}
		if form.Has("description") {
			c.Description = strPtr(form.Get("description"))
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, b)
}

func (s *Server) handleDeleteCustomer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.deleteCustomer(id, requestInfo(w, r)); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, deletedStub{ID: id, Object: "customer", Deleted: true})
}

func (s *Server) handleListCustomers(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, "/v1/customers", s.customers.page, func(form url.Values) (listing[*customer], error) {
		email := form.Get("email")
		return listing[*customer]{
			match:  func(c *customer) bool { return !c.deleted && (email == "" || derefStr(c.Email) == email) },
			render: renderCustomer,
		}, nil
	})
}
