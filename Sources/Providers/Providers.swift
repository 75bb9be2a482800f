// The Providers module: the Kubernetes REST client over libcurl and the provider adapters (issue 5).
