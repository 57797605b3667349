//! The JSON of the group routes: sending a group and reading its status.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::SendOptions;

/// Body of `POST /api/groups`: one task run once per entry of `args_list`,
/// all members in parallel (Celery's `group(task.s(*args) for args in
/// args_list)`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendGroupRequest {
    /// The task every member runs, e.g. `tasks.add`.
    pub task: String,
    /// The positional arguments of each member, in group order (1 to
    /// 10,000 members), each any JSON values.
    pub args_list: Vec<Vec<Value>>,
    /// Keyword arguments given to every member.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub kwargs: Map<String, Value>,
    /// How to send every member; `task_id`, if given, is the group's id.
    #[serde(default)]
    pub options: SendOptions,
}

/// Answer to sending a group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupSent {
    /// The group's id (`GET /api/groups/{id}`).
    pub group_id: String,
    /// The task every member runs.
    pub task: String,
    /// The queue the members went to.
    pub queue: String,
    /// The members' task ids, in group order.
    pub members: Vec<String>,
    /// Whether the group was saved in the result backend (as Celery's
    /// `GroupResult.save()` does); when not, `GET /api/groups/{id}` reads it
    /// from the members this server sees.
    pub saved: bool,
}

/// One member of a group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupMember {
    /// Task id.
    pub id: String,
    /// Its state (PENDING when nothing is known yet).
    pub state: String,
    /// True once it finished (SUCCESS, FAILURE, REVOKED).
    pub ready: bool,
    /// Task name, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// The return value (SUCCESS) or the stored error (FAILURE, REVOKED);
    /// absent before it finished.
    /// Any JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// `GET /api/groups/{id}`: a group's members and progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupView {
    /// Group id.
    pub id: String,
    /// How many members it has.
    pub total: usize,
    /// Members that succeeded (Celery's `completed_count()`).
    pub completed: usize,
    /// Members that failed or were revoked.
    pub failed: usize,
    /// True when every member finished.
    pub ready: bool,
    /// `saved` when read from the group saved in the result backend
    /// (`GroupResult.save()`, Python's or ours; its membership is exact),
    /// `seen` when gathered from the members this server has seen (events,
    /// result documents, sends; members it has not seen are missing).
    pub source: String,
    /// When the group is a chord's header: the task id of the chord's body.
    #[serde(default)]
    pub chord_id: Option<String>,
    /// The members, in group order.
    pub members: Vec<GroupMember>,
}
