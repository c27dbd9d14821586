import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.DeploymentOptions;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.ExplainDetail;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.catalog.ResolvedSchema;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;
import org.apache.flink.util.CloseableIterator;

import java.math.BigDecimal;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * Runs the golden SQL corpus in an embedded Flink (streaming mode, parallelism 1, UTC) and
 * writes each query's final multiset of rows as canonical JSON (tests/sql-golden/README.md).
 *
 *   java -cp "$FLINK_LIB/*:." Golden TABLES_SQL DATA_DIR QUERIES_DIR EXPECTED_DIR [NAME...]
 *
 * NAME arguments restrict the run to query files whose name contains one of them. Each
 * query's changelog is folded: +I and +U add a row, -U and -D remove one equal row.
 */
public class Golden {
    static final long TIMEOUT_SECONDS = Long.getLong("golden.timeout", 120);

    /** Flink settings of every run; README.md says why. */
    static final String[][] SETTINGS = {
        {"parallelism.default", "1"},
        {"table.local-time-zone", "UTC"},
        // 0: no periodic watermark timer; the watermark assigner emits a watermark with every
        // row that raises it, so which rows are late does not depend on wall-clock timing.
        {"pipeline.auto-watermark-interval", System.getProperty("golden.watermark-interval", "0")},
    };

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: Golden TABLES_SQL DATA_DIR QUERIES_DIR EXPECTED_DIR [NAME...]");
            System.exit(2);
        }
        Path tablesSql = Path.of(args[0]);
        Path data = Path.of(args[1]).toAbsolutePath().normalize();
        Path queries = Path.of(args[2]);
        Path expected = Path.of(args[3]);
        List<String> only = Arrays.asList(args).subList(4, args.length);
        Files.createDirectories(expected);

        // One mini-cluster for the whole run, jobs submitted to it through its REST endpoint:
        // a mini-cluster per job (the embedded default) costs about 3 s per query.
        Configuration conf = new Configuration();
        MiniCluster cluster = null;
        if (!Boolean.getBoolean("golden.cluster-per-job")) {
            Configuration mc = new Configuration();
            mc.set(RestOptions.BIND_PORT, "0");
            cluster = new MiniCluster(new MiniClusterConfiguration.Builder().setConfiguration(mc)
                    .setNumTaskManagers(1).setNumSlotsPerTaskManager(4).build());
            cluster.start();
            URI rest = cluster.getRestAddress().get();
            conf.set(DeploymentOptions.TARGET, "remote");
            conf.set(RestOptions.ADDRESS, rest.getHost());
            conf.set(RestOptions.PORT, rest.getPort());
        }
        TableEnvironment t = TableEnvironment.create(
                EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());
        for (String[] kv : SETTINGS) t.getConfig().set(kv[0], kv[1]);
        String ddl = stripComments(Files.readString(tablesSql)).replace("@DATA@", data.toString());
        for (String stmt : ddl.split(";")) {
            if (!stmt.isBlank()) t.executeSql(stmt.trim());
        }

        List<Path> files;
        try (var s = Files.list(queries)) {
            files = s.filter(p -> p.getFileName().toString().endsWith(".sql"))
                    .filter(p -> only.isEmpty()
                            || only.stream().anyMatch(n -> p.getFileName().toString().contains(n)))
                    .sorted()
                    .collect(Collectors.toList());
        }
        int ok = 0, failed = 0;
        List<String> updating = new ArrayList<>();
        long start = System.nanoTime();
        for (Path f : files) {
            String name = f.getFileName().toString().replaceFirst("\\.sql$", "");
            String sql = stripComments(Files.readString(f)).trim();
            if (sql.endsWith(";")) sql = sql.substring(0, sql.length() - 1).trim();
            long t0 = System.nanoTime();
            String json;
            String note;
            try {
                String mode = changelogMode(t, sql);
                Result r = run(t, sql);
                json = r.json;
                note = r.rows + " rows, " + mode;
                if (!mode.equals("[I]")) updating.add(name);
                ok++;
            } catch (Throwable e) {
                String msg = errorLine(e);
                json = "{\"flink_error\": " + str(msg) + "}\n";
                note = "FLINK ERROR: " + msg;
                failed++;
            }
            Files.writeString(expected.resolve(name + ".json"), json, StandardCharsets.UTF_8);
            System.out.printf("%-40s %6d ms  %s%n", name, (System.nanoTime() - t0) / 1_000_000, note);
        }
        System.out.printf("%d queries: %d answered, %d flink_error, %.1f s%n", files.size(), ok,
                failed, (System.nanoTime() - start) / 1e9);
        System.out.println("updating results (plan root not [I]): " + String.join(" ", updating));
        System.exit(0);
    }

    /** The changelog mode of the plan's root ([I] for an append-only result). */
    static String changelogMode(TableEnvironment t, String sql) {
        String plan = t.explainSql(sql, ExplainDetail.CHANGELOG_MODE);
        int at = plan.indexOf("== Optimized Physical Plan ==");
        Matcher m = Pattern.compile("changelogMode=\\[([^\\]]*)\\]").matcher(plan);
        return at >= 0 && m.find(at) ? "[" + m.group(1) + "]" : "[?]";
    }

    static final class Result {
        String json;
        int rows;
        boolean updating;
    }

    static Result run(TableEnvironment t, String sql) throws Exception {
        TableResult tr = t.executeSql(sql);
        ResolvedSchema schema = tr.getResolvedSchema();
        ExecutorService ex = Executors.newSingleThreadExecutor(r -> {
            Thread th = new Thread(r, "golden-collect");
            th.setDaemon(true);
            return th;
        });
        CloseableIterator<Row> it = tr.collect();
        Future<Result> fut = ex.submit(() -> fold(schema, it));
        try {
            return fut.get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            tr.getJobClient().ifPresent(jc -> jc.cancel());
            throw new RuntimeException("timeout: no end of results after " + TIMEOUT_SECONDS + " s");
        } catch (java.util.concurrent.ExecutionException e) {
            throw (e.getCause() instanceof Exception) ? (Exception) e.getCause() : e;
        } finally {
            try {
                it.close();
            } catch (Exception ignored) {
            }
            ex.shutdownNow();
        }
    }

    static Result fold(ResolvedSchema schema, CloseableIterator<Row> it) {
        List<Column> cols = schema.getColumns();
        Map<String, Integer> bag = new HashMap<>();
        boolean updating = false;
        while (it.hasNext()) {
            Row row = it.next();
            StringBuilder sb = new StringBuilder("[");
            for (int i = 0; i < row.getArity(); i++) {
                if (i > 0) sb.append(",");
                value(sb, row.getField(i));
            }
            String key = sb.append("]").toString();
            RowKind kind = row.getKind();
            if (kind != RowKind.INSERT) updating = true;
            if (kind == RowKind.INSERT || kind == RowKind.UPDATE_AFTER) {
                bag.merge(key, 1, Integer::sum);
            } else {
                Integer n = bag.get(key);
                if (n == null) throw new IllegalStateException("changelog " + kind.shortString()
                        + " of a row not in the result: " + key);
                if (n == 1) bag.remove(key); else bag.put(key, n - 1);
            }
        }
        List<String> rows = new ArrayList<>();
        for (Map.Entry<String, Integer> e : bag.entrySet()) {
            for (int i = 0; i < e.getValue(); i++) rows.add(e.getKey());
        }
        // By UTF-8 bytes (unsigned), the order a byte-wise sort of the lines gives.
        rows.sort((a, b) -> Arrays.compareUnsigned(a.getBytes(StandardCharsets.UTF_8),
                b.getBytes(StandardCharsets.UTF_8)));
        StringBuilder out = new StringBuilder("{\"columns\": [");
        for (int i = 0; i < cols.size(); i++) {
            if (i > 0) out.append(", ");
            out.append(str(cols.get(i).getName()));
        }
        out.append("],\n\"types\": [");
        for (int i = 0; i < cols.size(); i++) {
            if (i > 0) out.append(", ");
            out.append(str(cols.get(i).getDataType().getLogicalType().toString()));
        }
        out.append("],\n\"rows\": [");
        for (int i = 0; i < rows.size(); i++) {
            out.append(i == 0 ? "\n" : ",\n").append(rows.get(i));
        }
        out.append(rows.isEmpty() ? "]}\n" : "\n]}\n");
        Result r = new Result();
        r.json = out.toString();
        r.rows = rows.size();
        r.updating = updating;
        return r;
    }

    static void value(StringBuilder sb, Object v) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof Byte || v instanceof Short || v instanceof Integer || v instanceof Long) {
            sb.append(v);
        } else if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            if (Double.isNaN(d)) sb.append("\"NaN\"");
            else if (Double.isInfinite(d)) sb.append(d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
            else sb.append(v instanceof Float ? Float.toString((Float) v) : Double.toString(d));
        } else if (v instanceof BigDecimal) {
            sb.append(((BigDecimal) v).toPlainString());
        } else if (v instanceof Boolean) {
            sb.append(v);
        } else if (v instanceof String) {
            sb.append(str((String) v));
        } else if (v instanceof LocalDateTime) {
            sb.append(str(timestamp((LocalDateTime) v)));
        } else if (v instanceof Instant) {
            sb.append(str(timestamp(LocalDateTime.ofInstant((Instant) v, ZoneOffset.UTC))));
        } else if (v instanceof LocalDate) {
            LocalDate d = (LocalDate) v;
            sb.append(str(String.format("%04d-%02d-%02d", d.getYear(), d.getMonthValue(), d.getDayOfMonth())));
        } else if (v instanceof LocalTime) {
            LocalTime d = (LocalTime) v;
            sb.append(str(String.format("%02d:%02d:%02d", d.getHour(), d.getMinute(), d.getSecond())));
        } else {
            // Not expected in the corpus (arrays, maps, rows, bytes): Java's text, as a string.
            sb.append(str(v instanceof byte[] ? Arrays.toString((byte[]) v) : v.toString()));
        }
    }

    static String timestamp(LocalDateTime d) {
        return String.format("%04d-%02d-%02d %02d:%02d:%02d.%03d", d.getYear(), d.getMonthValue(),
                d.getDayOfMonth(), d.getHour(), d.getMinute(), d.getSecond(), d.getNano() / 1_000_000);
    }

    /** A JSON string: quotes, backslashes and control characters escaped, the rest as is. */
    static String str(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                case '\b': sb.append("\\b"); break;
                case '\f': sb.append("\\f"); break;
                default:
                    if (c < 0x20 || c == 0x7f) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
            }
        }
        return sb.append('"').toString();
    }

    /** Whole-line and trailing `--` comments out (not inside '...' literals). */
    static String stripComments(String sql) {
        StringBuilder out = new StringBuilder();
        for (String line : sql.split("\n", -1)) {
            boolean quoted = false;
            int cut = line.length();
            for (int i = 0; i < line.length(); i++) {
                char c = line.charAt(i);
                if (c == '\'') quoted = !quoted;
                else if (!quoted && c == '-' && i + 1 < line.length() && line.charAt(i + 1) == '-') {
                    cut = i;
                    break;
                }
            }
            out.append(line, 0, cut).append('\n');
        }
        return out.toString();
    }

    /** The first line of the error a user would read: the planner's message for a query Flink
     *  refuses, the root cause for a job that fails; job ids taken out (they change per run). */
    static String errorLine(Throwable e) {
        Throwable shown = e;
        String top = e.getClass().getName();
        boolean planning = top.contains("ValidationException") || top.contains("SqlParserException")
                || top.contains("TableException");
        if (!planning) {
            while (shown.getCause() != null && shown.getCause() != shown) shown = shown.getCause();
        }
        String msg = shown.getMessage() == null ? shown.getClass().getName() : shown.getMessage();
        String line = msg.split("\n", 2)[0].trim();
        if (!planning && shown != e) line = shown.getClass().getSimpleName() + ": " + line;
        return line.replaceAll("[0-9a-f]{32}", "<id>");
    }
}
