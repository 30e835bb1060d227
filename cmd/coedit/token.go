package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/web"
)

// minSecretLen is the shortest auth secret serve and token accept: HS256
// with a shorter key is guessable offline from one token.
const minSecretLen = 32

// runToken is `coedit token`: it prints a signed token on stdout, for
// trying auth out and for scripts. Real deployments mint tokens in their
// own login service with the same secret and claims (web.TokenClaims).
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("coedit token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the token's subject: who holds it (required)")
	var docs []string
	fs.Func("docs", "a document pattern collection/id, '*' matching any run of characters (repeat the flag for several); default every document", func(p string) error {
		if err := collab.CheckPattern(p); err != nil {
			return err
		}
		docs = append(docs, p)
		return nil
	})
	readOnly := fs.Bool("read-only", false, "allow reading only, no submits")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	secret, secretFile := secretFlags(fs)
	if err := setFromEnv(fs, getenv); err != nil {
		return &usageError{"token: " + err.Error()}
	}
	if err := parseFlags(fs, args, "token: ", stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("token: unexpected argument %q", fs.Arg(0))}
	}
	if *sub == "" {
		return &usageError{"token: --sub is required"}
	}
	if *ttl <= 0 {
		return &usageError{"token: --ttl must be positive"}
	}
	key, err := loadSecret(*secret, *secretFile)
	if err != nil {
		return err
	}
	if key == nil {
		return &usageError{"token: no secret: pass --auth-secret or --auth-secret-file, or set COEDIT_AUTH_SECRET or COEDIT_AUTH_SECRET_FILE"}
	}
	if len(docs) == 0 {
		docs = []string{"*/*"}
	}
	claims := web.TokenClaims{}
	claims.Subject = *sub
	now := time.Now()
	claims.IssuedAt = jwt.NewNumericDate(now)
	claims.ExpiresAt = jwt.NewNumericDate(now.Add(*ttl))
	for _, p := range docs {
		claims.Docs = append(claims.Docs, web.TokenDoc{Pattern: p, Write: !*readOnly})
	}
	tok, err := web.SignToken(key, claims)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// secretFlags declares --auth-secret and --auth-secret-file on fs; the
// caller's setFromEnv gives them COEDIT_AUTH_SECRET and
// COEDIT_AUTH_SECRET_FILE. Their defaults stay empty, so -h never prints
// a secret taken from the environment.
func secretFlags(fs *flag.FlagSet) (secret, file *string) {
	secret = fs.String("auth-secret", "", "HS256 secret, at least 32 bytes; turns authentication on (prefer --auth-secret-file: a flag shows in ps)")
	file = fs.String("auth-secret-file", "", "file holding the HS256 secret (trailing newlines are ignored)")
	return secret, file
}

// loadSecret returns the secret from the flag or the file (one of them),
// or nil when neither is set.
func loadSecret(secret, file string) ([]byte, error) {
	var key []byte
	switch {
	case secret != "" && file != "":
		return nil, &usageError{"--auth-secret and --auth-secret-file: give one, not both"}
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("--auth-secret-file: %v", err)}
		}
		key = []byte(strings.TrimRight(string(b), "\r\n"))
	case secret != "":
		key = []byte(secret)
	default:
		return nil, nil
	}
	if len(key) < minSecretLen {
		return nil, &usageError{fmt.Sprintf("the auth secret has %d bytes; use at least %d random bytes (e.g. openssl rand -hex 32)", len(key), minSecretLen)}
	}
	return key, nil
}
