module kratos-boilerplate-ts/examples/go

go 1.19

// The versions Debian 12 ships (golang-google-grpc-dev,
// golang-google-protobuf-dev; genproto as grpc v1.33.3 asks), so the offline
// build (build-offline.sh) and a build through the module proxy agree.
require (
	google.golang.org/genproto v0.0.0-20200526211855-cb27e3aa2013
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
