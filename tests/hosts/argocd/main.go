// Command argocd-cmp-server is Argo CD's Config Management Plugin server (the sidecar
// binary), built from github.com/argoproj/argo-cd/v3 for rewriter's test suite, with a
// stand-in for argocd-repo-server's side of the conversation:
//
//	argocd-cmp-server [flags]          the real server: argo-cd's cmd/argocd-cmp-server
//	argocd-cmp-server client OP        call it the way argocd-repo-server does
//
// `client` reads {"repoPath", "appPath", "request"} as JSON on stdin, where request is a
// reposerver ManifestRequest (the repo-server's own input), finds the plugin under
// $ARGOCD_PLUGINSOCKFILEPATH, and prints the answer as JSON on stdout. OP is one of
//
//	source-type what an Application without a source type is: every plugin's discovery
//	            first (util/app/discovery.AppType), then Chart.yaml/kustomization/Directory
//	check       CheckPluginConfiguration
//	match       MatchRepository (the plugin's discover rule) with generate's environment
//	parameters  what the UI's Parameters tab shows: discovery, then GetParametersAnnouncement
//	generate    what a sync renders: discovery, CheckPluginConfiguration, GenerateManifest
//
// The client uses the module's generated gRPC client (cmpserver/apiclient) and the
// repo-server's own helpers: util/app/discovery picks the plugin, util/cmp streams the
// repository as a tgz. A failed call prints {"code", "message"} and exits 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	grpc_retry "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	k8sversion "k8s.io/apimachinery/pkg/util/version"

	cmpserver "github.com/argoproj/argo-cd/v3/cmd/argocd-cmp-server/commands"
	pluginclient "github.com/argoproj/argo-cd/v3/cmpserver/apiclient"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	repoclient "github.com/argoproj/argo-cd/v3/reposerver/apiclient"
	"github.com/argoproj/argo-cd/v3/util/app/discovery"
	"github.com/argoproj/argo-cd/v3/util/cmp"
	utilio "github.com/argoproj/argo-cd/v3/util/io"
)

// The repo-server's default gRPC deadline for a plugin request.
const deadline = 60 * time.Second

type input struct {
	RepoPath string                     `json:"repoPath"`
	AppPath  string                     `json:"appPath"`
	Request  repoclient.ManifestRequest `json:"request"`
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "client" {
		os.Exit(client(os.Args[2]))
	}
	// As argo-cd's cmd/main.go does for this binary name.
	command := cmpserver.NewCommand()
	command.SilenceUsage = true
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}

func client(op string) int {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintf(os.Stderr, "client: reading the request: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var out any
	var err error
	switch op {
	case "source-type", "check", "match", "parameters", "generate":
		out, err = call(ctx, op, in)
	default:
		fmt.Fprintf(os.Stderr, "client: unknown operation %q\n", op)
		return 2
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	if err != nil {
		// status.Code and status.Convert see through the repo-server's %w wrapping.
		_ = encoder.Encode(map[string]string{"code": status.Code(err).String(), "message": err.Error()})
		return 1
	}
	_ = encoder.Encode(out)
	return 0
}

func call(ctx context.Context, op string, in input) (any, error) {
	q := &in.Request
	source := q.ApplicationSource
	if source == nil {
		source = &v1alpha1.ApplicationSource{}
	}
	pluginName := ""
	if source.Plugin != nil {
		pluginName = source.Plugin.Name
	}
	switch op {
	case "source-type":
		// reposerver/repository.go GetAppSourceType: the request's ARGOCD_APP_* only.
		env := requestEnv(q, source).Environ()
		sourceType, err := discovery.AppType(ctx, in.AppPath, in.RepoPath, q.EnabledSourceTypes, nil, env)
		if err != nil {
			return nil, err
		}
		return map[string]string{"sourceType": sourceType}, nil
	case "check":
		conn, c, err := dial(pluginName)
		if err != nil {
			return nil, err
		}
		defer utilio.Close(conn)
		return c.CheckPluginConfiguration(ctx, &emptypb.Empty{})
	case "match":
		env, err := generateEnv(q, source)
		if err != nil {
			return nil, err
		}
		conn, c, err := dial(pluginName)
		if err != nil {
			return nil, err
		}
		defer utilio.Close(conn)
		stream, err := c.MatchRepository(ctx, grpc_retry.Disable())
		if err != nil {
			return nil, err
		}
		if err := cmp.SendRepoStream(ctx, in.AppPath, in.RepoPath, stream, env, nil); err != nil {
			return nil, err
		}
		return stream.CloseAndRecv()
	case "parameters":
		// reposerver/repository.go populatePluginAppDetails: only these four, then the
		// Application's plugin env and parameters.
		env, err := pluginParamEnvs([]string{
			"ARGOCD_APP_NAME=" + q.AppName,
			"ARGOCD_APP_SOURCE_REPO_URL=" + repoURL(q),
			"ARGOCD_APP_SOURCE_PATH=" + source.Path,
			"ARGOCD_APP_SOURCE_TARGET_REVISION=" + source.TargetRevision,
		}, source.Plugin)
		if err != nil {
			return nil, err
		}
		conn, c, err := discovery.DetectConfigManagementPlugin(ctx, in.AppPath, in.RepoPath, pluginName, env, nil)
		if err != nil {
			return nil, fmt.Errorf("failed to detect CMP for app: %w", err)
		}
		defer utilio.Close(conn)
		stream, err := c.GetParametersAnnouncement(ctx, grpc_retry.Disable())
		if err != nil {
			return nil, err
		}
		if err := cmp.SendRepoStream(ctx, in.AppPath, in.RepoPath, stream, env, nil); err != nil {
			return nil, err
		}
		return stream.CloseAndRecv()
	default: // generate: reposerver/repository.go runConfigManagementPluginSidecars
		env, err := generateEnv(q, source)
		if err != nil {
			return nil, err
		}
		conn, c, err := discovery.DetectConfigManagementPlugin(ctx, in.AppPath, in.RepoPath, pluginName, env, nil)
		if err != nil {
			return nil, err
		}
		defer utilio.Close(conn)
		if _, err := c.CheckPluginConfiguration(ctx, &emptypb.Empty{}); err != nil {
			return nil, fmt.Errorf("error calling cmp-server checkPluginConfiguration: %w", err)
		}
		stream, err := c.GenerateManifest(ctx, grpc_retry.Disable())
		if err != nil {
			return nil, err
		}
		if err := cmp.SendRepoStream(ctx, in.AppPath, in.RepoPath, stream, env, nil); err != nil {
			return nil, fmt.Errorf("error sending file to cmp-server: %w", err)
		}
		res, err := stream.CloseAndRecv()
		if err != nil {
			return nil, fmt.Errorf("error generating manifests in cmp: %w", err)
		}
		return res, nil
	}
}

// dial connects to the named plugin's socket, as discovery does for a named plugin.
func dial(name string) (utilio.Closer, pluginclient.ConfigManagementPluginServiceClient, error) {
	address := filepath.Join(common.GetPluginSockFilePath(), name+".sock")
	return pluginclient.NewConfigManagementPluginClientSet(address).NewConfigManagementPluginClient()
}

func repoURL(q *repoclient.ManifestRequest) string {
	if q.Repo == nil {
		return ""
	}
	return q.Repo.Repo
}

// requestEnv is reposerver/repository.go newEnv (unexported there, so restated here).
func requestEnv(q *repoclient.ManifestRequest, source *v1alpha1.ApplicationSource) v1alpha1.Env {
	revision := q.Revision
	return v1alpha1.Env{
		&v1alpha1.EnvEntry{Name: "ARGOCD_APP_NAME", Value: q.AppName},
		&v1alpha1.EnvEntry{Name: "ARGOCD_APP_NAMESPACE", Value: q.Namespace},
		&v1alpha1.EnvEntry{Name: "ARGOCD_APP_PROJECT_NAME", Value: q.ProjectName},
		&v1alpha1.EnvEntry{Name: "ARGOCD_APP_REVISION", Value: revision},
		&v1alpha1.EnvEntry{Name: "ARGOCD_APP_REVISION_SHORT", Value: shorten(revision, 7)},
		&v1alpha1.EnvEntry{Name: "ARGOCD_APP_REVISION_SHORT_8", Value: shorten(revision, 8)},
		&v1alpha1.EnvEntry{Name: "ARGOCD_APP_SOURCE_REPO_URL", Value: repoURL(q)},
		&v1alpha1.EnvEntry{Name: "ARGOCD_APP_SOURCE_PATH", Value: source.Path},
		&v1alpha1.EnvEntry{Name: "ARGOCD_APP_SOURCE_TARGET_REVISION", Value: source.TargetRevision},
	}
}

// generateEnv is the environment of a manifest generation: newEnv, then getPluginEnvs.
func generateEnv(q *repoclient.ManifestRequest, source *v1alpha1.ApplicationSource) ([]string, error) {
	kubeVersion := ""
	if q.KubeVersion != "" {
		v, err := k8sversion.ParseGeneric(q.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("could not parse kubernetes version %s: %w", q.KubeVersion, err)
		}
		kubeVersion = v.String()
	}
	vars := requestEnv(q, source).Environ()
	vars = append(vars, "KUBE_VERSION="+kubeVersion, "KUBE_API_VERSIONS="+strings.Join(q.ApiVersions, ","))
	return pluginParamEnvs(vars, source.Plugin)
}

// pluginParamEnvs is reposerver/repository.go getPluginParamEnvs: the Application's
// plugin env as ARGOCD_ENV_<name> (with $VAR references substituted from the request's
// variables), then its parameters as ARGOCD_APP_PARAMETERS and PARAM_<NAME>.
func pluginParamEnvs(vars []string, plugin *v1alpha1.ApplicationSourcePlugin) ([]string, error) {
	parsed := make(v1alpha1.Env, len(vars))
	for i, v := range vars {
		entry, err := v1alpha1.NewEnvEntry(v)
		if err != nil {
			return nil, fmt.Errorf("failed to parse env vars: %w", err)
		}
		parsed[i] = entry
	}
	if plugin == nil {
		return vars, nil
	}
	for _, entry := range plugin.Env {
		vars = append(vars, fmt.Sprintf("ARGOCD_ENV_%s=%s", entry.Name, parsed.Envsubst(entry.Value)))
	}
	params, err := plugin.Parameters.Environ()
	if err != nil {
		return nil, fmt.Errorf("failed to generate env vars from parameters: %w", err)
	}
	return append(vars, params...), nil
}

func shorten(revision string, length int) string {
	if len(revision) > length {
		return revision[:length]
	}
	return revision
}
