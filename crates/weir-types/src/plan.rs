//! The execution plan: the job's operators chained into task vertices, and the edges and
//! channels between them. The job manager and every task manager derive the same plan from the
//! same [`JobSpec`], so only the spec travels over the wire.
//!
//! Chaining (as in Flink): an operator joins its upstream's task when it has exactly one input,
//! that input is a forward edge, the upstream has no other consumer, and neither is a sink
//! feeding on. Chained operators hand batches to each other by a function call.

use crate::error::{Result, TypesError};
use crate::ids::TaskKey;
use crate::job::{JobSpec, Partitioning};

#[derive(Debug, Clone, PartialEq)]
pub struct TaskVertex {
    /// The id of the vertex: the index of its head operator in `JobSpec::operators`.
    pub id: u32,
    /// Operator indices, head first.
    pub operators: Vec<usize>,
    pub parallelism: u32,
    /// Edge ids feeding this vertex, in the head operator's input order.
    pub inputs: Vec<u32>,
    /// Edge ids leaving the tail operator.
    pub outputs: Vec<u32>,
    pub is_source: bool,
    pub is_sink: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdgeInfo {
    pub id: u32,
    pub from_vertex: u32,
    pub to_vertex: u32,
    pub from_parallelism: u32,
    pub to_parallelism: u32,
    pub partitioning: Partitioning,
}

/// One physical channel: a sender subtask of an edge's producer to one receiver subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    pub edge: u32,
    pub from_subtask: u32,
    pub to_subtask: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionPlan {
    /// In topological order.
    pub vertices: Vec<TaskVertex>,
    pub edges: Vec<EdgeInfo>,
}

impl ExecutionPlan {
    pub fn new(spec: &JobSpec) -> Result<Self> {
        let ops = &spec.operators;
        let index = |id: &str| {
            spec.operator_index(id)
                .ok_or_else(|| TypesError::Invalid(format!("unknown operator {id:?}")))
        };
        let mut consumers = vec![0usize; ops.len()];
        for op in ops {
            for input in &op.inputs {
                consumers[index(&input.from)?] += 1;
            }
        }
        // head[i]: the vertex (head operator) that operator i belongs to.
        let mut head: Vec<usize> = (0..ops.len()).collect();
        for (i, op) in ops.iter().enumerate() {
            if let [input] = op.inputs.as_slice() {
                let up = index(&input.from)?;
                let chain = input.partition == Partitioning::Forward
                    && ops[up].parallelism == op.parallelism
                    && consumers[up] == 1
                    && up < i;
                if chain {
                    head[i] = head[up];
                }
            }
        }
        let mut vertices: Vec<TaskVertex> = Vec::new();
        let mut vertex_of_head = vec![usize::MAX; ops.len()];
        for i in 0..ops.len() {
            if head[i] == i {
                vertex_of_head[i] = vertices.len();
                vertices.push(TaskVertex {
                    id: i as u32,
                    operators: vec![i],
                    parallelism: ops[i].parallelism,
                    inputs: vec![],
                    outputs: vec![],
                    is_source: ops[i].kind.is_source(),
                    is_sink: ops[i].kind.is_sink(),
                });
            } else {
                let v = vertex_of_head[head[i]];
                vertices[v].operators.push(i);
                vertices[v].is_sink = ops[i].kind.is_sink();
            }
        }
        let mut edges = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if head[i] != i {
                continue; // chained: no edge
            }
            for input in &op.inputs {
                let up = index(&input.from)?;
                let from_v = vertex_of_head[head[up]];
                let to_v = vertex_of_head[i];
                let id = edges.len() as u32;
                edges.push(EdgeInfo {
                    id,
                    from_vertex: vertices[from_v].id,
                    to_vertex: vertices[to_v].id,
                    from_parallelism: ops[up].parallelism,
                    to_parallelism: op.parallelism,
                    partitioning: input.partition.clone(),
                });
                vertices[to_v].inputs.push(id);
                vertices[from_v].outputs.push(id);
            }
        }
        if vertices.iter().any(|v| v.operators.is_empty()) {
            return Err(TypesError::Invalid(
                "operators must be listed after their inputs".into(),
            ));
        }
        Ok(Self { vertices, edges })
    }

    pub fn vertex(&self, id: u32) -> Option<&TaskVertex> {
        self.vertices.iter().find(|v| v.id == id)
    }

    pub fn edge(&self, id: u32) -> Option<&EdgeInfo> {
        self.edges.get(id as usize)
    }

    /// Every subtask of the job.
    pub fn tasks(&self) -> Vec<TaskKey> {
        self.vertices
            .iter()
            .flat_map(|v| {
                (0..v.parallelism).map(move |s| TaskKey {
                    vertex: v.id,
                    subtask: s,
                })
            })
            .collect()
    }

    /// The channels of an edge that end at `to_subtask`.
    pub fn channels_into(&self, edge: u32, to_subtask: u32) -> Vec<Channel> {
        let Some(e) = self.edge(edge) else {
            return vec![];
        };
        match e.partitioning {
            Partitioning::Forward => vec![Channel {
                edge,
                from_subtask: to_subtask,
                to_subtask,
            }],
            _ => (0..e.from_parallelism)
                .map(|from_subtask| Channel {
                    edge,
                    from_subtask,
                    to_subtask,
                })
                .collect(),
        }
    }

    /// The channels of an edge that start at `from_subtask`, ordered by receiver subtask.
    pub fn channels_from(&self, edge: u32, from_subtask: u32) -> Vec<Channel> {
        let Some(e) = self.edge(edge) else {
            return vec![];
        };
        match e.partitioning {
            Partitioning::Forward => vec![Channel {
                edge,
                from_subtask,
                to_subtask: from_subtask,
            }],
            _ => (0..e.to_parallelism)
                .map(|to_subtask| Channel {
                    edge,
                    from_subtask,
                    to_subtask,
                })
                .collect(),
        }
    }
}

impl JobSpec {
    /// Total slots needed: one per subtask of every task vertex (chained operators share one).
    pub fn slots_needed(&self) -> u32 {
        ExecutionPlan::new(self)
            .map(|p| p.vertices.iter().map(|v| v.parallelism).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> JobSpec {
        JobSpec::from_json(json).unwrap()
    }

    #[test]
    fn chains_forward_operators_and_splits_at_shuffles() {
        let s = spec(
            r#"{"name":"j","operators":[
            {"id":"g","type":"generator","parallelism":2},
            {"id":"f","type":"filter","parallelism":2,"inputs":[{"from":"g"}],"predicate":"key > 1"},
            {"id":"a","type":"keyed_aggregate","parallelism":3,"inputs":[{"from":"f","partition":{"hash":["key"]}}],
             "keys":["key"],"aggregates":[{"fn":"count","as":"c"}]},
            {"id":"o","type":"blackhole_sink","parallelism":3,"inputs":[{"from":"a"}]}]}"#,
        );
        let plan = ExecutionPlan::new(&s).unwrap();
        assert_eq!(plan.vertices.len(), 2);
        assert_eq!(plan.vertices[0].operators, vec![0, 1]);
        assert_eq!(plan.vertices[1].operators, vec![2, 3]);
        assert!(plan.vertices[1].is_sink);
        assert_eq!(plan.edges.len(), 1);
        assert_eq!(plan.channels_into(0, 1).len(), 2);
        assert_eq!(plan.channels_from(0, 1).len(), 3);
        assert_eq!(plan.tasks().len(), 5);
        assert_eq!(s.slots_needed(), 5);
    }

    #[test]
    fn union_of_two_sources_has_two_edges() {
        let s = spec(
            r#"{"name":"j","operators":[
            {"id":"a","type":"generator"},{"id":"b","type":"generator"},
            {"id":"u","type":"union","inputs":[{"from":"a"},{"from":"b"}]},
            {"id":"o","type":"blackhole_sink","inputs":[{"from":"u"}]}]}"#,
        );
        let plan = ExecutionPlan::new(&s).unwrap();
        assert_eq!(plan.vertices.len(), 3);
        assert_eq!(plan.vertex(2).unwrap().inputs, vec![0, 1]);
        assert_eq!(plan.vertex(2).unwrap().operators, vec![2, 3]);
    }
}
