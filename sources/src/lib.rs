//! Herald event sources (GitHub, Kubernetes, Ping): arrive with their own issue.
