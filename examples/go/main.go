// Command users calls the service from Go with grpc-go: it creates a user,
// finds them by email, reads them masked and in full, rotates the data key,
// and handles a refusal by its reason (the google.rpc.ErrorInfo detail).
//
// The stubs in gen/ are generated from the repository's protos by
// `npx buf generate` (see README.md). Settings come from the environment:
//
//	API_ADDR   the gRPC address (default localhost:9000)
//	API_TOKEN  a bearer token with the scopes users.read, users.write,
//	           pii.read and kms.admin (unset: no token, for a server with
//	           authentication off)
//
// It exits 1, saying why, when the service answers anything unexpected.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	kmsv1 "kratos-boilerplate-ts/examples/go/gen/kms/v1"
	userv1 "kratos-boilerplate-ts/examples/go/gen/user/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := os.Getenv("API_ADDR")
	if addr == "" {
		addr = "localhost:9000"
	}
	// Plaintext, as the development server listens. Against a server with
	// TLS, pass grpc.WithTransportCredentials(credentials.NewTLS(...))
	// instead (newer grpc-go spells plaintext insecure.NewCredentials()).
	conn, err := grpc.Dial(addr, grpc.WithInsecure())
	if err != nil {
		return err
	}
	defer conn.Close()
	users := userv1.NewUserServiceClient(conn)
	kms := kmsv1.NewKmsServiceClient(conn)

	// One deadline for the whole run: a call without one waits forever on a
	// stuck server. Every call made with ctx carries the token as metadata.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if token := os.Getenv("API_TOKEN"); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	} else {
		fmt.Println("API_TOKEN is not set: calling without a token")
	}

	// A new user each run, so the example can run again on the same server.
	username := "go_" + randomHex(4)
	email := username + "@example.com"
	created, err := users.CreateUser(ctx, &userv1.CreateUserRequest{
		Username: username,
		Password: "Pw1-" + randomHex(12), // a real client takes it from the person
		Email:    email,
		Name:     "Ada Lovelace",
	})
	if err != nil {
		return fmt.Errorf("CreateUser: %w", describe(err))
	}
	id := created.GetUser().GetId()
	fmt.Printf("created user %d %s\n", id, username)

	found, err := users.LookupUser(ctx, &userv1.LookupUserRequest{
		Key: &userv1.LookupUserRequest_Email{Email: email},
	})
	if err != nil {
		return fmt.Errorf("LookupUser: %w", describe(err))
	}
	if found.GetUser().GetId() != id {
		return fmt.Errorf("LookupUser by email found user %d, not %d", found.GetUser().GetId(), id)
	}
	fmt.Printf("found by email: user %d\n", id)

	// Masked is for screens and logs; full needs the pii.read scope, and
	// without it the service answers masked whatever view is asked for.
	masked, err := users.GetUser(ctx, &userv1.GetUserRequest{Id: id, View: userv1.View_VIEW_MASKED})
	if err != nil {
		return fmt.Errorf("GetUser masked: %w", describe(err))
	}
	fmt.Printf("masked: email %s, name %s\n", masked.GetUser().GetEmail(), masked.GetUser().GetName())
	full, err := users.GetUser(ctx, &userv1.GetUserRequest{Id: id, View: userv1.View_VIEW_FULL})
	if err != nil {
		return fmt.Errorf("GetUser full: %w", describe(err))
	}
	if full.GetUser().GetEmail() != email {
		return fmt.Errorf("the full read came back as %q: does the token have pii.read?",
			full.GetUser().GetEmail())
	}
	fmt.Printf("full: email %s, name %s\n", full.GetUser().GetEmail(), full.GetUser().GetName())

	rotated, err := kms.RotateDataKey(ctx, &kmsv1.RotateDataKeyRequest{Reason: "examples/go"})
	if err != nil {
		return fmt.Errorf("RotateDataKey: %w", describe(err))
	}
	fmt.Printf("rotated the data key: version %d (was %d)\n",
		rotated.GetKey().GetVersion(), rotated.GetPreviousVersion())

	// The email is taken now. A client branches on the ErrorInfo reason,
	// which is stable, never on the message, which is for people.
	_, err = users.CreateUser(ctx, &userv1.CreateUserRequest{
		Username: username + "_2",
		Password: "Pw1-" + randomHex(12),
		Email:    email,
	})
	info := errorInfo(err)
	switch {
	case err == nil:
		return errors.New("CreateUser with a taken email succeeded")
	case info.GetReason() == "USER_ALREADY_EXISTS":
		fmt.Printf("the same email again: %s, reason %s (field %s): handled\n",
			status.Code(err), info.GetReason(), info.GetMetadata()["field"])
	default:
		return fmt.Errorf("CreateUser with a taken email: %w", describe(err))
	}
	return nil
}

// errorInfo is the google.rpc.ErrorInfo detail of a gRPC error (sent in the
// grpc-status-details-bin trailer), or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// describe names an error's code and reason beside its message.
func describe(err error) error {
	s := status.Convert(err)
	return fmt.Errorf("%s, reason %s: %s", s.Code(), errorInfo(err).GetReason(), s.Message())
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
