//! Where the cluster's Redis is: one server (`redis://`, `rediss://`), or
//! the master that a set of Sentinels names
//! (`redis+sentinel://[user:password@]s1:26379,s2:26380/mymaster[?options]`).
//!
//! With Sentinels the node asks them for the master at start and each time
//! the master stops answering (a failover, or the old master back as a
//! replica and refusing writes), and moves its connection when they name
//! another: see `Cluster::heartbeat`. The credentials and options of the
//! URL are the master's; the Sentinels are asked without them.

use std::time::Duration;

use redis::RedisError;

/// How long one Sentinel may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_millis(1000);

/// The cluster's Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server, at this URL.
    Single(String),
    /// The master the Sentinels name.
    Sentinel(Sentinels),
}

/// A set of Sentinels and the master they watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentinels {
    /// Their `host:port`, asked in order.
    pub addrs: Vec<String>,
    /// The name they know the master by.
    pub master: String,
    /// `user:password@` of the master, or empty.
    auth: String,
    /// `?options` of the master's URL, or empty.
    query: String,
}

fn invalid(message: &str) -> RedisError {
    RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "invalid Redis URL",
        message.to_owned(),
    ))
}

impl Topology {
    /// The topology a URL names.
    pub fn parse(url: &str) -> Result<Self, RedisError> {
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            return Ok(Self::Single(url.to_owned()));
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, format!("?{query}")),
            None => (rest, String::new()),
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (format!("{auth}@"), rest),
            None => (String::new(), rest),
        };
        let Some((hosts, master)) = rest.split_once('/') else {
            return Err(invalid("a Sentinel URL names its master: /mymaster"));
        };
        let addrs: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| match h.contains(':') {
                true => h.to_owned(),
                false => format!("{h}:26379"),
            })
            .collect();
        if addrs.is_empty() || master.is_empty() || master.contains('/') {
            return Err(invalid(
                "a Sentinel URL lists its Sentinels and names its master: redis+sentinel://s1:26379,s2:26379/mymaster",
            ));
        }
        Ok(Self::Sentinel(Sentinels {
            addrs,
            master: master.to_owned(),
            auth,
            query,
        }))
    }

    /// The URL of the Redis to use now: the server's, or the master's that
    /// the first Sentinel to answer names.
    pub async fn master_url(&self) -> Result<String, RedisError> {
        match self {
            Self::Single(url) => Ok(url.clone()),
            Self::Sentinel(sentinels) => sentinels.master_url().await,
        }
    }

    /// Whether a failover can move the master.
    pub fn follows_failovers(&self) -> bool {
        matches!(self, Self::Sentinel(_))
    }
}

impl Sentinels {
    async fn master_url(&self) -> Result<String, RedisError> {
        let mut last = invalid("no Sentinel answered");
        for addr in &self.addrs {
            match tokio::time::timeout(ASK_TIMEOUT, self.ask(addr)).await {
                Ok(Ok((host, port))) => {
                    return Ok(format!("redis://{}{host}:{port}/{}", self.auth, self.query));
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = invalid("a Sentinel did not answer in time"),
            }
        }
        Err(last)
    }

    /// The master's address, as the Sentinel at `addr` knows it.
    async fn ask(&self, addr: &str) -> Result<(String, u16), RedisError> {
        let client = redis::Client::open(format!("redis://{addr}"))?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let found: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master)
            .query_async(&mut conn)
            .await?;
        found.ok_or_else(|| invalid("the Sentinel does not know this master"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Topology::parse("redis://h:6379").unwrap(),
            Topology::Single("redis://h:6379".into())
        );
        let Topology::Sentinel(s) =
            Topology::parse("redis+sentinel://u:p@s1:26379,s2/mymaster?protocol=resp3").unwrap()
        else {
            panic!("a Sentinel URL");
        };
        assert_eq!(s.addrs, ["s1:26379", "s2:26379"]);
        assert_eq!(s.master, "mymaster");
        assert_eq!(
            (s.auth.as_str(), s.query.as_str()),
            ("u:p@", "?protocol=resp3")
        );
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel:///mymaster",
            "redis+sentinel://s1/a/b",
        ] {
            assert!(Topology::parse(bad).is_err(), "{bad}");
        }
    }
}
