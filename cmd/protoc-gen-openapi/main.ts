import { runNodeJs } from "@bufbuild/protoplugin";
import { openApiPlugin } from "./plugin.js";

// buf runs this as a local plugin through tsx (buf.gen.openapi.yaml):
// CodeGeneratorRequest on stdin, CodeGeneratorResponse on stdout.
runNodeJs(openApiPlugin);
