import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Runs a SQL script (SET, CREATE, INSERT; ';'-separated, '--' comments) in an embedded
 *  Flink mini-cluster, in streaming mode, and waits for the last statement's job. */
public class RunSql {
    public static void main(String[] args) throws Exception {
        String sql = Files.readString(Path.of(args[0])).replaceAll("(?m)--.*$", "");
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        Pattern set = Pattern.compile("(?is)SET\\s+'([^']+)'\\s*=\\s*'([^']*)'");
        TableResult last = null;
        for (String stmt : sql.split(";")) {
            String s = stmt.trim();
            if (s.isEmpty()) continue;
            Matcher m = set.matcher(s);
            if (m.matches()) {
                t.getConfig().getConfiguration().setString(m.group(1), m.group(2));
            } else {
                last = t.executeSql(s);
            }
        }
        if (last != null) last.await();
    }
}
