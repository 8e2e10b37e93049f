//! A launch as the loop carries it out: the instance's own metric token, its process tree
//! (through the provider), its role's credentials, and what bellows serves it on its own
//! address: the metadata endpoint, and in a network namespace the instance face (the AWS
//! endpoint and putting its metrics).

use bellows_core::Time;
use bellows_core::ids::InstanceId;

use super::Node;

impl Node {
    /// Launches `instance` of `group` in `zone`, or tells the group the launch failed.
    pub(super) fn launch(&mut self, group: String, instance: InstanceId, zone: String, now: Time) {
        let Some(spec) = self.stack.group(&group) else {
            return;
        };
        // Without a token of its own the instance could not put metrics, and a
        // shared one (all zeros) would let it put them as another: the launch fails.
        let token = match crate::token::random_hex::<16>() {
            Ok(t) => t,
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(group = %group, instance = %instance, %reason, "launch failed");
                if let Some(g) = self.groups.get_mut(&group) {
                    g.on_launch_failed(&instance, now, &reason);
                }
                return;
            }
        };
        self.instance_tokens.insert(token.clone(), instance.clone());
        // The SDKs reach bellows' AWS endpoint, never the internet, and find
        // their credentials behind the metadata endpoint.
        // (`BELLOWS_API` and `AWS_ENDPOINT_URL` come from the provider, which
        // knows where the instance reaches bellows.)
        let env = [
            ("BELLOWS_METRICS_TOKEN".to_owned(), token),
            ("AWS_DEFAULT_REGION".to_owned(), self.aws_region.clone()),
            ("AWS_REGION".to_owned(), self.aws_region.clone()),
        ];
        match self.provider.launch(spec, &instance, &zone, &env) {
            Ok(launched) => {
                let ip = launched.ip;
                tracing::info!(group = %group, instance = %instance, zone = %zone, address = %format!("{ip}:{}", spec.launch.port), namespace = launched.namespace, "launching");
                let meta = crate::imds::Metadata {
                    instance_id: instance.to_string(),
                    private_ip: ip,
                    zone: zone.clone(),
                    instance_type: spec.launch.instance_type.name.clone(),
                    group: group.clone(),
                    stack: self.stack.name.clone(),
                    role: spec.role.name.clone(),
                    allow: spec.role.allow.clone(),
                    sessions: self.sessions.clone(),
                };
                self.sessions
                    .grant(instance.as_str(), &spec.role.name, &spec.role.allow);
                // Bound now, well before the instance's command can start.
                let mut tasks = Vec::new();
                match crate::imds::serve(meta, launched.host) {
                    Ok(task) => tasks.push(task),
                    Err(e) => {
                        tracing::warn!(instance = %instance, error = %e, "no metadata endpoint for this instance")
                    }
                }
                if launched.namespace {
                    match self.serve_instance_face(launched.host) {
                        Ok(task) => tasks.push(task),
                        Err(e) => {
                            tracing::warn!(instance = %instance, error = %e, "no AWS endpoint for this instance")
                        }
                    }
                }
                self.metadata.insert(instance.clone(), tasks);
                self.owner.insert(instance, group);
            }
            Err(reason) => {
                tracing::warn!(group = %group, instance = %instance, %reason, "launch failed");
                if let Some(g) = self.groups.get_mut(&group) {
                    g.on_launch_failed(&instance, now, &reason);
                }
            }
        }
    }

    /// Serves an instance in a network namespace the AWS endpoint (and putting its
    /// metrics) on the host end of its veth, at the control port's number.
    fn serve_instance_face(
        &self,
        host: std::net::Ipv4Addr,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = std::net::TcpListener::bind((host, self.control.port()))?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let face = self.instance_face.clone();
        Ok(tokio::spawn(async move {
            let _ = axum::serve(listener, face).await;
        }))
    }
}
