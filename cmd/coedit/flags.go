package main

import (
	"flag"
	"fmt"
	"strings"
)

// envNames are the variables whose name is not derived from their flag's:
// --redis takes a URL, and COEDIT_REDIS_URL is what operators expect.
var envNames = map[string]string{"redis": "COEDIT_REDIS_URL"}

// envName is the environment variable that gives a flag its default:
// COEDIT_ and the flag's name in upper case with - as _ (--ops-per-second
// is COEDIT_OPS_PER_SECOND), unless envNames says otherwise.
func envName(flagName string) string {
	if n, ok := envNames[flagName]; ok {
		return n
	}
	return "COEDIT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// setFromEnv gives every flag of fs the value of its environment variable
// (see envName) where getenv returns one, and adds the variable's name to
// the flag's usage. Call it after defining the flags and before Parse, so
// that the command line wins over the environment, which wins over the
// default. It returns an error naming the first variable whose value
// the flag refuses.
func setFromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		f.Usage += " (env " + name + ")"
		v := getenv(name)
		if v == "" || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s=%q: %w", name, v, e)
		}
	})
	return err
}
