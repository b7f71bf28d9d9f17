//! A tree node's settings.

use std::time::Duration;

use plenum_proto::overlay::TopologySpec;

use crate::{ConfigError, FullMeshConfig, nonzero};

/// Settings of a [`TreeNode`]; build with [`TreeConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeConfig {
    pub(super) max_degree: usize,
    pub(super) root_degree: Option<usize>,
    pub(super) request_timeout: Duration,
    pub(super) retry_after: Duration,
    pub(super) history: Duration,
    pub(super) links: FullMeshConfig,
}

impl Default for TreeConfig {
    fn default() -> Self {
        Self {
            max_degree: 10,
            root_degree: None,
            request_timeout: Duration::from_secs(30),
            retry_after: Duration::from_secs(5),
            history: Duration::from_secs(30),
            links: FullMeshConfig::default(),
        }
    }
}

/// Builder of [`TreeConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct TreeConfigBuilder(TreeConfig);

impl TreeConfigBuilder {
    /// Most children per node (default 10).
    pub fn max_degree(mut self, n: usize) -> Self {
        self.0.max_degree = n;
        self
    }
    /// Most children of the root, if not `max_degree` (a presenter's upload may carry more
    /// copies than a viewer's).
    pub fn root_degree(mut self, n: Option<usize>) -> Self {
        self.0.root_degree = n;
        self
    }
    /// How long a candidate child may take to link (30 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.0.request_timeout = d;
        self
    }
    /// How long a join request may go unanswered before it is sent to the root again
    /// (5 s: a request handed down the tree is lost with a peer that dies on its way).
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.0.retry_after = d;
        self
    }
    /// How long broadcasts are kept to replay over a link that opens (30 s: longer than a
    /// dead parent takes to notice and a subtree to rejoin).
    pub fn history(mut self, d: Duration) -> Self {
        self.0.history = d;
        self
    }
    /// How links to the parent and children are opened, probed and retried.
    pub fn links(mut self, links: FullMeshConfig) -> Self {
        self.0.links = links;
        self
    }
    /// Validates the settings.
    pub fn build(self) -> Result<TreeConfig, ConfigError> {
        if !(1..=1000).contains(&self.0.max_degree) {
            return Err(ConfigError::Inconsistent(
                "max_degree must be between 1 and 1000",
            ));
        }
        if self.0.root_degree.is_some_and(|n| !(1..=1000).contains(&n)) {
            return Err(ConfigError::Inconsistent(
                "root_degree must be between 1 and 1000",
            ));
        }
        nonzero("request_timeout", self.0.request_timeout)?;
        nonzero("retry_after", self.0.retry_after)?;
        nonzero("history", self.0.history)?;
        Ok(self.0)
    }
}

impl TreeConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> TreeConfigBuilder {
        TreeConfigBuilder(Self::default())
    }

    /// Most children per node.
    pub fn max_degree(&self) -> usize {
        self.max_degree
    }

    /// Most children of a node, the root or another.
    pub fn degree(&self, root: bool) -> usize {
        match self.root_degree {
            Some(n) if root => n,
            _ => self.max_degree,
        }
    }

    /// The tree a room's topology asks for (`None` for other topologies), with the
    /// defaults for what the room does not say.
    pub fn from_spec(spec: &TopologySpec) -> Result<Option<Self>, ConfigError> {
        match spec {
            TopologySpec::Tree {
                max_degree,
                root_degree,
            } => Self::builder()
                .max_degree(usize::from(*max_degree))
                .root_degree(root_degree.map(usize::from))
                .build()
                .map(Some),
            _ => Ok(None),
        }
    }

    /// The same settings with links opened, probed and retried as `links` says.
    pub fn with_links(mut self, links: FullMeshConfig) -> Self {
        self.links = links;
        self
    }
}
