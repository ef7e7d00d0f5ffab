/*
 * Makes a running local broker's SCRAM users and ACLs equal to a plan, in one JVM and one
 * connection (the stack manager runs it at every start of a secured broker).
 *
 *   java -cp '<state>/kafka/lib/*' ApplySecurity <client.properties> <plan>
 *
 * client.properties: how to reach the broker as the node itself (its INTERNAL listener, mutual TLS).
 * plan: tab-separated lines rendered by samtykke.devstack (acls.render and the users):
 *   scram <user> <password>                                   upserted (SCRAM-SHA-512)
 *   acl   <principal> <resource type> <pattern type> <name> <operation>   ALLOW from any host
 * Users are upserted every time (the passwords file is the truth); ACLs not in the plan are
 * deleted, missing ones created. Any failure exits non-zero with the cause on stdout.
 */

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public final class ApplySecurity {
    private static final int SCRAM_ITERATIONS = 4096;

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.out.println("usage: ApplySecurity <client.properties> <plan>");
            System.exit(2);
        }
        Properties client = new Properties();
        try (InputStream in = Files.newInputStream(Path.of(args[0]))) {
            client.load(in);
        }
        List<UserScramCredentialAlteration> users = new ArrayList<>();
        Set<AclBinding> wanted = new LinkedHashSet<>();
        for (String line : Files.readAllLines(Path.of(args[1]))) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split("\t", -1);
            if (f[0].equals("scram") && f.length == 3) {
                users.add(new UserScramCredentialUpsertion(
                        f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), f[2]));
            } else if (f[0].equals("acl") && f.length == 6) {
                ResourcePattern pattern = new ResourcePattern(
                        ResourceType.valueOf(f[2]), f[4], PatternType.valueOf(f[3]));
                wanted.add(new AclBinding(pattern, new AccessControlEntry(
                        f[1], "*", AclOperation.valueOf(f[5]), AclPermissionType.ALLOW)));
            } else {
                throw new IllegalArgumentException("not a plan line: " + f[0] + " with " + f.length + " fields");
            }
        }
        try (Admin admin = Admin.create(client)) {
            if (!users.isEmpty()) {
                admin.alterUserScramCredentials(users).all().get();
            }
            Collection<AclBinding> current = admin.describeAcls(AclBindingFilter.ANY).values().get();
            List<AclBindingFilter> stale = current.stream()
                    .filter(binding -> !wanted.contains(binding)).map(AclBinding::toFilter).toList();
            List<AclBinding> missing = wanted.stream().filter(binding -> !current.contains(binding)).toList();
            if (!stale.isEmpty()) {
                admin.deleteAcls(stale).all().get();
            }
            if (!missing.isEmpty()) {
                admin.createAcls(missing).all().get();
            }
            System.out.printf("security applied: %d SCRAM users upserted; %d ACLs, %d added, %d removed%n",
                    users.size(), wanted.size(), missing.size(), stale.size());
        }
    }
}
