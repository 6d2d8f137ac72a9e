package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/secrets"
)

// ageKeyFileEnv is read when no --age-key-file is given, as sops reads it.
const ageKeyFileEnv = "SOPS_AGE_KEY_FILE"

func newSecretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Make age keys and encrypt, decrypt and rotate sops-encrypted Secrets",
		Long: `Secrets in a shoal repository are sops-encrypted YAML with age recipients. These commands
write the same format as the sops tool, so either can be used on the same files.`,
	}
	cmd.AddCommand(newSecretKeygenCommand(), newSecretEncryptCommand(), newSecretDecryptCommand(), newSecretRotateCommand())
	return cmd
}

func newSecretKeygenCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen [-o FILE]",
		Short: "Make an age X25519 identity and print its public key",
		Long: `Make an age X25519 identity (the format age-keygen writes). With -o the private key is
written to FILE (mode 0600; an existing file is never overwritten) and the public key is
printed; without -o the whole key file is printed. Put the public key in .sops.yaml and the
key file on the nodes (shoal agent --age-key-file).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, recipient, err := secrets.GenerateIdentity(time.Now())
			if err != nil {
				return err
			}
			if out == "" {
				_, err := cmd.OutOrStdout().Write(key)
				fmt.Fprintf(cmd.ErrOrStderr(), "Public key: %s\n", recipient)
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			_, werr := f.Write(key)
			if err := f.Close(); werr != nil || err != nil {
				os.Remove(out)
				return fmt.Errorf("write %s: %v", out, firstErr(werr, err))
			}
			fmt.Fprintln(cmd.OutOrStdout(), recipient)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the private key to FILE")
	return cmd
}

func newSecretEncryptCommand() *cobra.Command {
	var recipients []string
	var inPlace bool
	cmd := &cobra.Command{
		Use:   "encrypt FILE",
		Short: "Encrypt a Secret's data and stringData with sops' format",
		Long: `Encrypt the values under data and stringData of FILE, as
sops --encrypt --encrypted-regex '^(data|stringData)$' would, to the age recipients given
with --age, or else to those of the first creation rule of the nearest .sops.yaml (in FILE's
directory or above) whose path_regex matches FILE. The output goes to stdout, or replaces
FILE with --in-place. Comments inside data and stringData are dropped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			rcpts := splitList(recipients)
			if len(rcpts) == 0 {
				rule, err := secrets.FindCreationRule(file)
				if err != nil {
					return err
				}
				if err := shoalRule(rule); err != nil {
					return err
				}
				rcpts = rule.Recipients
			}
			out, err := secrets.Encrypt(file, data, secrets.EncryptOptions{Recipients: rcpts})
			if err != nil {
				return err
			}
			return emit(cmd.OutOrStdout(), file, out, inPlace)
		},
	}
	cmd.Flags().StringSliceVar(&recipients, "age", nil, "age recipient (age1...); repeat or separate with commas")
	cmd.Flags().BoolVarP(&inPlace, "in-place", "i", false, "replace FILE instead of printing")
	return cmd
}

// shoalRule refuses a .sops.yaml rule that chooses other values than data and stringData: the
// file would not be what shoal expects of a Secret, and sops is the tool for other files.
func shoalRule(r *secrets.CreationRule) error {
	if r.EncryptedRegex == secrets.SecretRegex || (r.EncryptedRegex == "" && r.UnencryptedRegex == "" && r.EncryptedSuffix == "" && r.UnencryptedSuffix == "") {
		return nil
	}
	return fmt.Errorf("%s: the matching creation rule chooses other values to encrypt; shoal secret encrypt encrypts data and stringData only (encrypted_regex: %s): set that in the rule, or use sops", r.Config, secrets.SecretRegex)
}

func newSecretDecryptCommand() *cobra.Command {
	var keyFiles []string
	cmd := &cobra.Command{
		Use:   "decrypt FILE --age-key-file KEY",
		Short: "Decrypt a sops file to stdout, for debugging",
		Long: `Decrypt FILE with the age identities in the key files (--age-key-file, repeatable; default
$SOPS_AGE_KEY_FILE), verify its MAC, and print the plaintext to stdout, as YAML. Nothing is
written to disk: redirecting stdout to a file is your decision. The cluster never needs this: nodes
decrypt in memory when a pod needs a Secret.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kr, err := loadKeyring(keyFiles)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			p, err := secrets.Decrypt(args[0], data, kr)
			if err != nil {
				return err
			}
			out, err := p.YAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&keyFiles, "age-key-file", nil, "age identity file; repeat for several (default $"+ageKeyFileEnv+")")
	return cmd
}

func newSecretRotateCommand() *cobra.Command {
	var keyFiles, recipients []string
	var inPlace bool
	cmd := &cobra.Command{
		Use:   "rotate FILE --age RECIPIENT... --age-key-file KEY",
		Short: "Re-encrypt a sops file to a new set of age recipients, with a new data key",
		Long: `Decrypt FILE with the identities in the key files (--age-key-file, repeatable; default
$SOPS_AGE_KEY_FILE), then encrypt the same values to exactly the recipients given with --age,
under a new data key, with a new MAC and lastmodified (as sops rotate does). A recipient left
out can no longer decrypt the new file. The output goes to stdout, or replaces FILE with
--in-place.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rcpts := splitList(recipients)
			if len(rcpts) == 0 {
				return fmt.Errorf("give the new recipients with --age age1...")
			}
			kr, err := loadKeyring(keyFiles)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			out, err := secrets.Rotate(args[0], data, kr, rcpts, time.Now())
			if err != nil {
				return err
			}
			return emit(cmd.OutOrStdout(), args[0], out, inPlace)
		},
	}
	cmd.Flags().StringSliceVar(&recipients, "age", nil, "new age recipient (age1...); repeat or separate with commas")
	cmd.Flags().StringArrayVar(&keyFiles, "age-key-file", nil, "age identity file that decrypts FILE; repeat for several (default $"+ageKeyFileEnv+")")
	cmd.Flags().BoolVarP(&inPlace, "in-place", "i", false, "replace FILE instead of printing")
	return cmd
}

func loadKeyring(files []string) (*secrets.Keyring, error) {
	if len(files) == 0 {
		if env := os.Getenv(ageKeyFileEnv); env != "" {
			files = []string{env}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("give an age identity file with --age-key-file (or set $%s)", ageKeyFileEnv)
	}
	return secrets.LoadKeyring(files...)
}

// emit prints an encrypted file, or replaces file with it atomically, keeping its mode.
func emit(stdout io.Writer, file string, out []byte, inPlace bool) error {
	if !inPlace {
		_, err := stdout.Write(out)
		return err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(out)
	cerr := tmp.Close()
	if err := firstErr(werr, cerr, os.Chmod(tmp.Name(), fi.Mode().Perm())); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
