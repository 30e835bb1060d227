package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// Error codes the server sends, in ShareDB's shape {"code","message"}: on
// the WebSocket as the failed request echoed with an "error" field, on the
// HTTP API as {"error":{...}} with the HTTP status in the last column. The
// ShareDB codes are those of sharedb@7's lib/error.js, so the real client
// reacts to them as it does with a ShareDB server (for a failed op: roll
// back the op and report the error); the others are coedit's own.
//
//	code                                        HTTP  when
//	ERR_MESSAGE_BADLY_FORMED                    400   a frame that is binary, not UTF-8, not a JSON object; a missing or malformed c, d, v, seq, src, ch, id, b, pv or ts
//	ERR_OT_OP_BADLY_FORMED                      400   an op that does not decode (the decoder's message says where), not exactly one of op/create/del, create data not a string, del not true
//	ERR_DOC_TYPE_NOT_RECOGNIZED                 400   a create whose type is not text-unicode
//	ERR_DOC_ALREADY_CREATED                     409   a create on a document that exists
//	ERR_DOC_DOES_NOT_EXIST                      404   an edit or delete on a document never created
//	ERR_DOC_WAS_DELETED                         409   an edit or delete on a deleted document
//	ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT  409   a submit, nf or presence whose v is past the head
//	ERR_SUBMIT_TRANSFORM_OPS_NOT_FOUND          409   the ops between a submit's v and the head are not in the log
//	ERR_OT_OP_NOT_APPLIED                       422   an op that does not apply to the document (skips or deletes past its end)
//	ERR_TYPE_DOES_NOT_SUPPORT_PRESENCE          400   document presence on a type other than text-unicode
//	ERR_UNKNOWN_ERROR                           500   anything else (a storage failure); the server logs the cause
//	ERR_UNKNOWN_ACTION                          400   a message whose "a" is not an action coedit serves
//	ERR_QUERY_NOT_SUPPORTED                     501   qf, qs: coedit has no queries
//	ERR_SRC_MISMATCH                            403   a submit whose src is not its connection's
//	ERR_STALE_SEQ                               409   a submit whose seq is below its src's last committed one and is not a resend
//	ERR_SEQ_REUSED                              409   a submit whose seq is its src's last committed one, made at a version after that commit: a new op reusing a seq, not a resend
//	ERR_RATE_LIMITED                            429   an HTTP submit owed more than a second's wait for its address's op bucket
//	ERR_OP_TOO_LARGE                            413   an op, create data or presence value larger than Options.MaxOpSize, or a frame larger than MaxFrameSize
//	ERR_DOC_TOO_LARGE                           413   an op that would make the document longer than the hub allows
//	ERR_PRESENCE_TOO_LARGE                      413   a presence value that would take the connection's presence past collab.Options.MaxPresenceBytes
//	ERR_TOO_MANY_SUBSCRIPTIONS                  400   more documents or presence channels (subscribed, or holding the connection's presence) than collab.Options.MaxSubscriptions
//	ERR_ORIGIN_NOT_ALLOWED                      403   an HTTP API request from a browser origin not allowed
//	ERR_SERVER_CLOSING                          503   an HTTP API request during shutdown (a WebSocket is closed with 1001 instead, so the client resends after reconnecting)
//	ERR_SERVER_BUSY                             503   an HTTP API request to a document with too many requests waiting (collab.Options.MaxInbox; a WebSocket is closed with 1013 instead, so the client resends after reconnecting)
//	ERR_TOKEN_REQUIRED                          401   auth is on and a WebSocket upgrade or HTTP API request carries no token
//	ERR_TOKEN_INVALID                           401   the token is malformed, not HS256, badly signed, or lacks sub or exp
//	ERR_TOKEN_EXPIRED                           401   the token's exp has passed (an open WebSocket is closed with 4001 instead)
//	ERR_FORBIDDEN                               403   the token does not allow this document (read, or write for a submit) or presence channel; the reply carries no document content
//	ERR_HOST_NOT_ALLOWED                        421   a request whose Host is neither an IP address, localhost, nor one of Options.AllowedHosts (DNS rebinding)
//	ERR_TOO_MANY_CONNECTIONS                    429   a WebSocket upgrade from an address that already holds Options.MaxConnsPerAddr connections
//	ERR_SERVER_FULL                             503   a WebSocket upgrade while the node holds Options.MaxConns connections
//	ERR_NOT_FOUND                               404   an HTTP API path the server does not serve
//	ERR_METHOD_NOT_ALLOWED                      405   an HTTP API path served for other methods (they are in the Allow header)
//	ERR_HISTORY_REPLACED                        409   a subscribe, fetch or submit from a client whose copy of the document holds records the cluster's history replaced (Redis lost them; see the README's cluster section): drop the copy and fetch the document without a version
//	ERR_UNAVAILABLE                             503   an HTTP API request while the cluster's commit point (Redis) is out of reach or the document is contended; sent with Retry-After (a WebSocket is closed with 1012 instead, so the client resends after reconnecting)
const (
	CodeBadlyFormed          = "ERR_MESSAGE_BADLY_FORMED"
	CodeOpBadlyFormed        = "ERR_OT_OP_BADLY_FORMED"
	CodeTypeNotRecognized    = "ERR_DOC_TYPE_NOT_RECOGNIZED"
	CodeDocAlreadyCreated    = "ERR_DOC_ALREADY_CREATED"
	CodeDocDoesNotExist      = "ERR_DOC_DOES_NOT_EXIST"
	CodeDocWasDeleted        = "ERR_DOC_WAS_DELETED"
	CodeVersionNewer         = "ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT"
	CodeTransformOpsNotFound = "ERR_SUBMIT_TRANSFORM_OPS_NOT_FOUND"
	CodeOpNotApplied         = "ERR_OT_OP_NOT_APPLIED"
	CodePresenceUnsupported  = "ERR_TYPE_DOES_NOT_SUPPORT_PRESENCE"
	CodeUnknownError         = "ERR_UNKNOWN_ERROR"
	CodeUnknownAction        = "ERR_UNKNOWN_ACTION"
	CodeQueryNotSupported    = "ERR_QUERY_NOT_SUPPORTED"
	CodeSrcMismatch          = "ERR_SRC_MISMATCH"
	CodeStaleSeq             = "ERR_STALE_SEQ"
	CodeSeqReused            = "ERR_SEQ_REUSED"
	CodeRateLimited          = "ERR_RATE_LIMITED"
	CodeOpTooLarge           = "ERR_OP_TOO_LARGE"
	CodeDocTooLarge          = "ERR_DOC_TOO_LARGE"
	CodePresenceTooLarge     = "ERR_PRESENCE_TOO_LARGE"
	CodeTooManySubscriptions = "ERR_TOO_MANY_SUBSCRIPTIONS"
	CodeOriginNotAllowed     = "ERR_ORIGIN_NOT_ALLOWED"
	CodeServerClosing        = "ERR_SERVER_CLOSING"
	CodeServerBusy           = "ERR_SERVER_BUSY"
	CodeTokenRequired        = "ERR_TOKEN_REQUIRED"
	CodeTokenInvalid         = "ERR_TOKEN_INVALID"
	CodeTokenExpired         = "ERR_TOKEN_EXPIRED"
	CodeForbidden            = "ERR_FORBIDDEN"
	CodeHostNotAllowed       = "ERR_HOST_NOT_ALLOWED"
	CodeTooManyConnections   = "ERR_TOO_MANY_CONNECTIONS"
	CodeServerFull           = "ERR_SERVER_FULL"
	CodeUnavailable          = "ERR_UNAVAILABLE"
	CodeHistoryReplaced      = "ERR_HISTORY_REPLACED"
	CodeNotFound             = "ERR_NOT_FOUND"
	CodeMethodNotAllowed     = "ERR_METHOD_NOT_ALLOWED"
)

// httpStatus is the HTTP status of each code (see the table above).
var httpStatus = map[string]int{
	CodeBadlyFormed:          http.StatusBadRequest,
	CodeOpBadlyFormed:        http.StatusBadRequest,
	CodeTypeNotRecognized:    http.StatusBadRequest,
	CodeDocAlreadyCreated:    http.StatusConflict,
	CodeDocDoesNotExist:      http.StatusNotFound,
	CodeDocWasDeleted:        http.StatusConflict,
	CodeVersionNewer:         http.StatusConflict,
	CodeTransformOpsNotFound: http.StatusConflict,
	CodeOpNotApplied:         http.StatusUnprocessableEntity,
	CodePresenceUnsupported:  http.StatusBadRequest,
	CodeUnknownError:         http.StatusInternalServerError,
	CodeUnknownAction:        http.StatusBadRequest,
	CodeQueryNotSupported:    http.StatusNotImplemented,
	CodeSrcMismatch:          http.StatusForbidden,
	CodeStaleSeq:             http.StatusConflict,
	CodeSeqReused:            http.StatusConflict,
	CodeRateLimited:          http.StatusTooManyRequests,
	CodeOpTooLarge:           http.StatusRequestEntityTooLarge,
	CodeDocTooLarge:          http.StatusRequestEntityTooLarge,
	CodePresenceTooLarge:     http.StatusRequestEntityTooLarge,
	CodeTooManySubscriptions: http.StatusBadRequest,
	CodeOriginNotAllowed:     http.StatusForbidden,
	CodeServerClosing:        http.StatusServiceUnavailable,
	CodeServerBusy:           http.StatusServiceUnavailable,
	CodeTokenRequired:        http.StatusUnauthorized,
	CodeTokenInvalid:         http.StatusUnauthorized,
	CodeTokenExpired:         http.StatusUnauthorized,
	CodeForbidden:            http.StatusForbidden,
	CodeHostNotAllowed:       http.StatusMisdirectedRequest,
	CodeTooManyConnections:   http.StatusTooManyRequests,
	CodeServerFull:           http.StatusServiceUnavailable,
	CodeUnavailable:          http.StatusServiceUnavailable,
	CodeHistoryReplaced:      http.StatusConflict,
	CodeNotFound:             http.StatusNotFound,
	CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
}

// engineCodes maps the engine's sentinel errors to codes, first match
// wins. collab.ErrClosed maps to ERR_SERVER_CLOSING for the HTTP API only:
// a WebSocket request that finds the hub closed closes the connection
// instead (see conn.fail).
var engineCodes = []struct {
	err  error
	code string
}{
	{collab.ErrHistoryReplaced, CodeHistoryReplaced},
	{collab.ErrDocExists, CodeDocAlreadyCreated},
	{collab.ErrDocMissing, CodeDocDoesNotExist},
	{collab.ErrDocDeleted, CodeDocWasDeleted},
	{collab.ErrVersionAhead, CodeVersionNewer},
	{collab.ErrPresenceVersion, CodeVersionNewer},
	{collab.ErrOpsMissing, CodeTransformOpsNotFound},
	{collab.ErrUnknownType, CodeTypeNotRecognized},
	{collab.ErrDocTooLarge, CodeDocTooLarge},
	{collab.ErrPresenceTooLarge, CodePresenceTooLarge},
	{collab.ErrSrcMismatch, CodeSrcMismatch},
	{collab.ErrStaleSeq, CodeStaleSeq},
	{collab.ErrSeqReused, CodeSeqReused},
	{collab.ErrInvalidKey, CodeBadlyFormed},
	{collab.ErrInvalidPresence, CodeBadlyFormed},
	{collab.ErrTooManySubscriptions, CodeTooManySubscriptions},
	{collab.ErrInvalidOp, CodeOpNotApplied},
	{ot.ErrOutOfBounds, CodeOpNotApplied},
	{ot.ErrInvalidOp, CodeOpNotApplied},
	{collab.ErrClosed, CodeServerClosing},
	{collab.ErrBusy, CodeServerBusy},
	{ErrNoToken, CodeTokenRequired},
	{ErrBadToken, CodeTokenInvalid},
	{ErrTokenExpired, CodeTokenExpired},
	{collab.ErrUnavailable, CodeUnavailable},
	{collab.ErrContended, CodeUnavailable},
}

// retryable reports whether err means "not now" rather than "no": the
// commit point is out of reach or the document too contended. The op was
// not committed, or is committed and its resend is acknowledged once, so
// a WebSocket is closed (CloseRetry) for the client to reconnect and
// resend, where an error reply would make it roll the op back.
func retryable(err error) bool {
	return errors.Is(err, collab.ErrUnavailable) || errors.Is(err, collab.ErrContended)
}

// protoError is an error the client is told about, with its code.
type protoError struct {
	Code    string
	Message string
}

func (e *protoError) Error() string { return e.Code + ": " + e.Message }

// status is the HTTP status for e's code.
func (e *protoError) status() int {
	if s, ok := httpStatus[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// newError returns a protoError with code and message.
func newError(code, message string) *protoError {
	return &protoError{Code: code, Message: message}
}

// forbidden is the error for a request the connection's token does not
// allow. Its message names only what the request itself named.
func forbidden(message string) *protoError {
	return newError(CodeForbidden, message)
}

// badlyFormed is the error for a malformed message field.
func badlyFormed(message string) *protoError {
	return newError(CodeBadlyFormed, message)
}

// toProtoError classifies err. internal is true for errors the client is
// not told the cause of (the caller logs them).
func toProtoError(err error) (pe *protoError, internal bool) {
	if errors.As(err, &pe) {
		return pe, false
	}
	for _, e := range engineCodes {
		if errors.Is(err, e.err) {
			return newError(e.code, err.Error()), false
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return newError(CodeUnknownError, "the request timed out"), true
	}
	return newError(CodeUnknownError, "internal error"), true
}
