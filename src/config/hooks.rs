//! The hook flags (`--hooks-*`, `--progress-hooks-interval`), named as
//! tusd names them, plus the outbox's.

use super::Span;
use crate::hook::HookSettings;
use crate::upload::events::HookKind;
use clap::Args;
use std::path::PathBuf;

/// How the application is told.
#[derive(Debug, Clone, Args)]
pub struct HookFlags {
    /// URL that receives one POST per hook, in tusd's JSON.
    #[arg(long, env = "PARTWAY_HOOKS_HTTP")]
    pub hooks_http: Option<String>,
    /// Directory of executables named by hook (pre-create, post-finish,
    /// ...), given the hook's JSON on stdin, as tusd's file hooks.
    #[arg(long, env = "PARTWAY_HOOKS_DIR")]
    pub hooks_dir: Option<PathBuf>,
    /// The hooks sent: any of pre-create, post-create, post-receive,
    /// pre-finish, post-finish, pre-terminate, post-terminate.
    #[arg(
        long,
        env = "PARTWAY_HOOKS_ENABLED_EVENTS",
        value_delimiter = ',',
        default_value = "pre-create,post-create,post-receive,post-terminate,post-finish"
    )]
    pub hooks_enabled_events: Vec<String>,
    /// Client request headers copied onto each hook POST.
    #[arg(
        long,
        env = "PARTWAY_HOOKS_HTTP_FORWARD_HEADERS",
        value_delimiter = ','
    )]
    pub hooks_http_forward_headers: Vec<String>,
    /// How long a hook call gets, over all its tries.
    #[arg(long, env = "PARTWAY_HOOKS_HTTP_TIMEOUT", default_value = "15s")]
    pub hooks_http_timeout: Span,
    /// Tries in all for a blocking hook (a network error or a 5xx is tried again).
    #[arg(long, env = "PARTWAY_HOOKS_HTTP_RETRY", default_value_t = 3)]
    pub hooks_http_retry: u32,
    /// The wait between two tries of a blocking hook.
    #[arg(long, env = "PARTWAY_HOOKS_HTTP_BACKOFF", default_value = "1s")]
    pub hooks_http_backoff: Span,
    /// At most one post-receive per PATCH in this interval.
    #[arg(long, env = "PARTWAY_PROGRESS_HOOKS_INTERVAL", default_value = "1s")]
    pub progress_hooks_interval: Span,
    /// How long a post-create, post-finish or post-terminate is retried
    /// before it goes to the dead letters.
    #[arg(long, env = "PARTWAY_HOOKS_RETRY_FOR", default_value = "24h")]
    pub hooks_retry_for: Span,
    /// File with a secret (at least 32 bytes) that signs every hook request
    /// (Hook-Timestamp, Hook-Signature).
    #[arg(long, env = "PARTWAY_HOOKS_SIGNING_SECRET")]
    pub hooks_signing_secret: Option<PathBuf>,
    /// Write durable events to the outbox even without --hooks-http or
    /// --hooks-dir, for an application that reads it itself.
    #[arg(long, env = "PARTWAY_HOOKS_OUTBOX")]
    pub hooks_outbox: bool,
    /// Move every dead-lettered event back into the outbox, print how
    /// many, and exit.
    #[arg(long)]
    pub hooks_replay_dead: bool,
}

impl HookFlags {
    /// The settings these flags describe.
    ///
    /// # Errors
    /// A plain message naming the flag at fault.
    pub fn settings(&self) -> Result<HookSettings, String> {
        let enabled = self
            .hooks_enabled_events
            .iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
            .map(|name| {
                HookKind::parse(name)
                    .ok_or_else(|| format!("--hooks-enabled-events: no hook is named {name:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.hooks_http.is_some() && self.hooks_dir.is_some() {
            return Err("--hooks-http and --hooks-dir: give one transport, not both".into());
        }
        if let Some(url) = &self.hooks_http
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err("--hooks-http must be an http:// or https:// URL".into());
        }
        if self.hooks_http_timeout.0.is_zero() {
            return Err("--hooks-http-timeout must be more than 0".into());
        }
        if self.hooks_signing_secret.is_some() && self.hooks_http.is_none() {
            return Err("--hooks-signing-secret signs --hooks-http requests; give that too".into());
        }
        let settings = HookSettings {
            http: self.hooks_http.clone(),
            dir: self.hooks_dir.clone(),
            enabled,
            forward_headers: self.hooks_http_forward_headers.clone(),
            timeout: self.hooks_http_timeout.0,
            retry: self.hooks_http_retry.max(1),
            backoff: self.hooks_http_backoff.0,
            retry_for: self.hooks_retry_for.0,
            signing_secret: self.hooks_signing_secret.clone(),
            outbox: self.hooks_outbox,
            progress_interval: self.progress_hooks_interval.0,
        };
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::upload::events::HookKind;
    use clap::Parser;
    use std::time::Duration;

    fn settings(args: &[&str]) -> Result<crate::hook::HookSettings, String> {
        let mut argv = vec!["partway"];
        argv.extend_from_slice(args);
        let config = Config::try_parse_from(argv).map_err(|e| e.to_string())?;
        config.validate().map(|s| s.hooks)
    }

    #[test]
    fn tusds_defaults_and_flags() {
        let plain = settings(&[]).expect("valid");
        assert_eq!(plain.enabled, crate::hook::HookSettings::DEFAULT_EVENTS);
        assert!(!plain.sends() && !plain.outbox);
        let set = settings(&[
            "--hooks-http",
            "http://127.0.0.1:9/hooks",
            "--hooks-enabled-events",
            "pre-finish,post-finish",
            "--hooks-http-forward-headers",
            "Authorization,X-Tenant",
            "--hooks-http-retry",
            "5",
            "--hooks-retry-for",
            "2h",
            "--progress-hooks-interval",
            "2s",
        ])
        .expect("valid");
        assert!(set.sends());
        assert_eq!(set.enabled, [HookKind::PreFinish, HookKind::PostFinish]);
        assert_eq!(set.forward_headers, ["Authorization", "X-Tenant"]);
        assert_eq!(set.retry, 5);
        assert_eq!(set.retry_for, Duration::from_secs(7200));
        assert_eq!(set.progress_interval, Duration::from_secs(2));
    }

    #[test]
    fn refusals_name_the_flag() {
        let err = |args: &[&str]| settings(args).expect_err("invalid");
        assert!(err(&["--hooks-enabled-events", "post-access"]).contains("--hooks-enabled-events"));
        assert!(err(&["--hooks-http", "ftp://x"]).contains("--hooks-http"));
        let both = err(&["--hooks-http", "http://x", "--hooks-dir", "/tmp"]);
        assert!(both.contains("not both"), "{both}");
        assert!(err(&["--hooks-signing-secret", "/k"]).contains("--hooks-http"));
    }
}
