package stripefake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ErrNotFound is matched (errors.Is) by errors about an object that does not
// exist, whether the fake answers them with 404 (an id in the path) or 400
// (an id in a parameter).
var ErrNotFound = errors.New("stripefake: no such object")

// ErrInvalid is matched (errors.Is) by errors the fake answers with 400.
var ErrInvalid = errors.New("stripefake: invalid request")

// apiError is an error the fake answers in Stripe's shape.
type apiError struct {
	status  int
	typ     string // invalid_request_error, api_error, card_error
	code    string
	param   string
	message string
}

// Error describes the error with its status and parameter.
func (e *apiError) Error() string {
	if e.param != "" {
		return fmt.Sprintf("%s (status %d, param %s)", e.message, e.status, e.param)
	}
	return fmt.Sprintf("%s (status %d)", e.message, e.status)
}

// Is lets errors.Is match ErrNotFound and ErrInvalid.
func (e *apiError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.code == "resource_missing"
	case ErrInvalid:
		return e.status == http.StatusBadRequest
	}
	return false
}

// notFound is the 404 for an id in the URL path.
func notFound(noun, id string) *apiError {
	return &apiError{
		status: http.StatusNotFound, typ: "invalid_request_error", code: "resource_missing",
		param: "id", message: fmt.Sprintf("No such %s: '%s'", noun, id),
	}
}

// missingRef is the 400 for an id in a parameter that names nothing.
func missingRef(noun, id, param string) *apiError {
	return &apiError{
		status: http.StatusBadRequest, typ: "invalid_request_error", code: "resource_missing",
		param: param, message: fmt.Sprintf("No such %s: '%s'", noun, id),
	}
}

// cursorMissing is the 400 for a starting_after or ending_before that names
// nothing.
func cursorMissing(noun, id, param string) *apiError { return missingRef(noun, id, param) }

// invalid is a 400 about one parameter.
func invalid(param, code, format string, args ...any) *apiError {
	return &apiError{
		status: http.StatusBadRequest, typ: "invalid_request_error", code: code,
		param: param, message: fmt.Sprintf(format, args...),
	}
}

// missingParam is the 400 for a required parameter left out.
func missingParam(param string) *apiError {
	return invalid(param, "parameter_missing", "Missing required param: %s.", param)
}

// errorBody is Stripe's error envelope.
type errorBody struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Code    string `json:"code,omitempty"`
	DocURL  string `json:"doc_url,omitempty"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	Type    string `json:"type"`
}

// writeError answers err in Stripe's shape; errors that are not apiErrors
// become 500 api_error.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, typ: "api_error", message: err.Error()}
	}
	body := errorBody{Error: errorFields{
		Code: ae.code, Message: ae.message, Param: ae.param, Type: ae.typ,
	}}
	if ae.code != "" {
		body.Error.DocURL = "https://stripe.com/docs/error-codes/" + ae.code
	}
	b, _ := json.Marshal(body) // a struct of strings always marshals
	writeRaw(w, ae.status, b)
}

// writeRaw answers a JSON body.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeJSON marshals v and answers it with status 200.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, fmt.Errorf("marshal response: %w", err))
		return
	}
	writeRaw(w, http.StatusOK, b)
}
