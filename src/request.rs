//! What an admission request is about, as jitguard reads it from an AdmissionReview: the
//! types every later stage (grants, policy, decision, audit) shares. No dependencies.

/// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    pub const ALL: [Self; 4] = [Self::Create, Self::Update, Self::Delete, Self::Connect];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Operation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(&s.to_ascii_uppercase())
            .ok_or_else(|| format!("{s:?} is not CREATE, UPDATE, DELETE or CONNECT"))
    }
}

/// What jitguard itself reads from `request`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestInfo {
    pub uid: String,
    pub operation: Operation,
    /// The resource's API group and version (`request.resource`), not the kind's.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Plural resource name, e.g. `pods`.
    pub resource: String,
    /// e.g. `exec`, `status`; empty when none.
    pub sub_resource: String,
    pub namespace: String,
    pub name: String,
    pub user: String,
    pub groups: Vec<String>,
    pub dry_run: bool,
}

impl RequestInfo {
    /// `pods/exec`, or `pods`.
    pub fn resource_path(&self) -> String {
        if self.sub_resource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.sub_resource)
        }
    }
}
