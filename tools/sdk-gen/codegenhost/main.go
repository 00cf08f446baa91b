// Command codegenhost is a Python language host that writes programs with the CLI's own Python code
// generator (pkg/v3's codegen/python, at the CLI's version), for `pulumi import` in a Python project.
//
// `pulumi import` asks the project's language host for the code of what it imported (its GenerateProgram
// call). The Python host that builds here (sdk/v3 v3.68.0, scripts/language-host.sh) predates that call,
// so this runs that host as its child, passes every other call through to it unchanged, and answers
// GenerateProgram itself as the current Python host does (the same binding options and generator).
//
// Named pulumi-language-python and put first on PATH for the `pulumi import` alone (tests/native/
// test_python_import_code.py); PULUMI_MLFLOW_RUNS_PYTHON_HOST names the host it wraps.
//
//	PULUMI_MLFLOW_RUNS_PYTHON_HOST=<host> pulumi-language-python ARGS...   (the arguments the CLI passes)
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"

	hclsyntax "github.com/pulumi/pulumi/pkg/v3/codegen/hcl2/syntax"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/pulumi/pulumi/pkg/v3/codegen/pcl"
	codegen "github.com/pulumi/pulumi/pkg/v3/codegen/python"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

const hostVariable = "PULUMI_MLFLOW_RUNS_PYTHON_HOST"

func main() {
	if err := serve(); err != nil {
		fmt.Fprintln(os.Stderr, "codegenhost:", err)
		os.Exit(1)
	}
}

func serve() error {
	wrapped := os.Getenv(hostVariable)
	if wrapped == "" {
		return fmt.Errorf("%s must name the Python language host to pass calls to", hostVariable)
	}
	child := exec.Command(wrapped, os.Args[1:]...)
	child.Stderr = os.Stderr
	child.SysProcAttr = endsWithParent()
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return fmt.Errorf("%s=%s: %w", hostVariable, wrapped, err)
	}
	lines := bufio.NewReader(out)
	port, err := lines.ReadString('\n') // a plugin's first line on stdout is its port
	if err != nil {
		return fmt.Errorf("%s gave no port: %w", wrapped, err)
	}
	encoding.RegisterCodec(passThrough{})
	conn, err := grpc.NewClient("127.0.0.1:"+strings.TrimSpace(port),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	server := grpc.NewServer(grpc.UnknownServiceHandler(forward(conn)), grpc.MaxRecvMsgSize(1<<30))
	server.RegisterService(&grpc.ServiceDesc{
		ServiceName: "pulumirpc.LanguageRuntime",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "GenerateProgram", Handler: generateProgramHandler}},
	}, struct{}{})
	fmt.Printf("%d\n", listener.Addr().(*net.TCPAddr).Port)
	go func() { _, _ = io.Copy(os.Stdout, lines) }()
	go func() { _ = child.Wait(); server.Stop() }()
	return server.Serve(listener)
}

// frame is one message passed through as it came, never decoded.
type frame struct{ data []byte }

// passThrough is the "proto" codec for frames as they are, and protobuf for everything else.
type passThrough struct{}

func (passThrough) Name() string { return "proto" }

func (passThrough) Marshal(v any) ([]byte, error) {
	if f, ok := v.(*frame); ok {
		return f.data, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (passThrough) Unmarshal(data []byte, v any) error {
	if f, ok := v.(*frame); ok {
		f.data = append([]byte(nil), data...)
		return nil
	}
	return proto.Unmarshal(data, v.(proto.Message))
}

// forward passes a call this host does not answer to the wrapped one, stream for stream.
func forward(conn *grpc.ClientConn) grpc.StreamHandler {
	return func(_ any, in grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(in)
		ctx, cancel := context.WithCancel(in.Context())
		defer cancel()
		md, _ := metadata.FromIncomingContext(ctx)
		ctx = metadata.NewOutgoingContext(ctx, md.Copy())
		desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
		out, err := conn.NewStream(ctx, desc, method)
		if err != nil {
			return err
		}
		go func() {
			for {
				f := &frame{}
				if err := in.RecvMsg(f); err != nil {
					if errors.Is(err, io.EOF) {
						_ = out.CloseSend()
					} else {
						cancel()
					}
					return
				}
				if err := out.SendMsg(f); err != nil {
					return
				}
			}
		}()
		first := true
		for {
			f := &frame{}
			if err := out.RecvMsg(f); err != nil {
				in.SetTrailer(out.Trailer())
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if first {
				if header, err := out.Header(); err == nil {
					_ = in.SendHeader(header)
				}
				first = false
			}
			if err := in.SendMsg(f); err != nil {
				return err
			}
		}
	}
}

func generateProgramHandler(
	_ any, ctx context.Context, decode func(any) error, _ grpc.UnaryServerInterceptor,
) (any, error) {
	req := &pulumirpc.GenerateProgramRequest{}
	if err := decode(req); err != nil {
		return nil, err
	}
	return generateProgram(req)
}

// generateProgram is the current Python host's GenerateProgram (sdk/python/cmd/pulumi-language-python).
func generateProgram(req *pulumirpc.GenerateProgramRequest) (*pulumirpc.GenerateProgramResponse, error) {
	loader, err := schema.NewLoaderClient(req.LoaderTarget)
	if err != nil {
		return nil, err
	}
	defer loader.Close()

	parser := hclsyntax.NewParser()
	for path, contents := range req.Source {
		if err := parser.ParseFile(strings.NewReader(contents), path); err != nil {
			return nil, err
		}
		if parser.Diagnostics.HasErrors() {
			return nil, parser.Diagnostics
		}
	}
	// For Python, output-versioned invokes are preferred.
	bindOptions := []pcl.BindOption{pcl.PreferOutputVersionedInvokes}
	if !req.Strict {
		bindOptions = append(bindOptions, pcl.NonStrictBindOptions()...)
	}
	program, diags, err := pcl.BindProgram(parser.Files, schema.NewCachedLoader(loader), bindOptions...)
	if err != nil {
		return nil, err
	}
	rpcDiagnostics := plugin.HclDiagnosticsToRPCDiagnostics(diags)
	if diags.HasErrors() {
		return &pulumirpc.GenerateProgramResponse{Diagnostics: rpcDiagnostics}, nil
	}
	if program == nil {
		return nil, errors.New("internal error: the program was nil")
	}
	files, diags, err := codegen.GenerateProgram(program)
	if err != nil {
		return nil, err
	}
	rpcDiagnostics = append(rpcDiagnostics, plugin.HclDiagnosticsToRPCDiagnostics(diags)...)
	return &pulumirpc.GenerateProgramResponse{Source: files, Diagnostics: rpcDiagnostics}, nil
}
